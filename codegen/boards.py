"""Boards are data (boards.json beside this file): adding a board is adding an entry, not code.

boards.json holds the boards and every fact about them that code used to decide for itself: each MCU CPU's
toolchain family and gcc flags ("cpus"), each toolchain's compiler and largest single object ("families": avr-gcc's
32,767 bytes), the emulators ("emulators": kind, machine, CPU) and the flash/RAM an Arduino core takes next to the
model ("core_margins"). `get(name)` returns a typed, frozen `Board` loaded once; its derived properties (is_avr,
is_linux, emulator_kind, has_qemu, gcc_flags, core_margin, max_object_bytes, serial_baud ...) are the only
interpretation of that data. A Board is also a read-only mapping of its boards.json entry (plus "name"), so code
written against the former dicts (board["title"], board.get("fqbn")) goes on working.

A stage's signature holds the board's name and only the fields its action uses (`Board.signature(fields)`); the
action gets the Board back with `get(name)`. So editing a board's USB ids reruns no stage that does not use them.
"""
import dataclasses
import json
import os
import types
from collections.abc import Mapping

from .errors import ConfigError

# The sketch's Serial.begin() rate unless a board entry says "baud": what `scons monitor`/`verify` open the port at.
DEFAULT_BAUD = 115200
_BOARDS_FILE = os.path.join(os.path.dirname(__file__), "boards.json")
_cache = None

KINDS = ("mcu", "linux")
FAMILIES = ("arm", "avr", "linux")
EMULATOR_KINDS = ("qemu", "simavr")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v):
    return _is_int(v) and v > 0


def _hex_id(v):
    try:
        return isinstance(v, str) and 0 <= int(v, 16) <= 0xFFFF
    except ValueError:
        return False


def _usb_ids(v):
    return isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and all(map(_hex_id, p)) for p in v)


def _text(v):
    return isinstance(v, str) and v.strip() != ""


# field: (check, what a good value is). Every field a boards.json entry may have; anything else is an error.
FIELDS = {
    "title": (_text, "a non-empty string"),
    "kind": (lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
    "cpu": (_text, "a CPU name (for an MCU board, one of boards.json's \"cpus\")"),
    "clock_hz": (_positive, "a positive integer (Hz)"),
    "flash_bytes": (_positive, "a positive integer (bytes)"),
    "ram_bytes": (_positive, "a positive integer (bytes)"),
    "fqbn": (_text, "an arduino-cli FQBN such as arduino:mbed_nano:nano33ble"),
    "core": (_text, "an Arduino core such as arduino:mbed_nano"),
    "core_version": (_text, "a version string such as 1.8.6"),
    "usb_ids": (_usb_ids, "a list of [vendor id, product id] pairs of hex strings such as [\"0x2341\", \"0x805a\"]"),
    "progmem": (lambda v: isinstance(v, bool), "true or false"),
    "usb_cdc": (lambda v: isinstance(v, bool), "true or false"),
    "emulator": (lambda v: v is None or isinstance(v, str), "null or one of boards.json's \"emulators\""),
    "flash_wait_states": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "baud": (lambda v: v is None or _positive(v), "a positive integer (baud)"),
    "serial_wait_ms": (lambda v: _is_int(v) and v >= 0, "a non-negative integer (ms)"),
    "model_defaults": (lambda v: isinstance(v, dict), "an object of build variables, e.g. {\"SIZE\": 32}"),
    "arch": (_text, "a string such as aarch64"),
    "os": (_text, "a string"),
    "cores": (_positive, "a positive integer"),
    "ram_note": (lambda v: isinstance(v, str), "a string"),
}
REQUIRED = {"mcu": ("title", "cpu", "clock_hz", "flash_bytes", "ram_bytes", "fqbn", "core"),
            "linux": ("title", "cpu", "clock_hz", "ram_bytes", "arch", "cores")}


@dataclasses.dataclass(frozen=True)
class Cpu:
    """An MCU CPU: its toolchain family (a key of boards.json's "families") and the gcc flags that target it."""
    name: str
    family: str
    gcc_flags: tuple


@dataclasses.dataclass(frozen=True)
class Family:
    """A toolchain: its C compiler, its size tool, and the largest single object (array) it accepts (None: no
    limit that matters)."""
    name: str
    compiler: str
    size_tool: str
    max_object_bytes: int = None
    max_object_why: str = ""


@dataclasses.dataclass(frozen=True)
class Emulator:
    """What runs a board's firmware without the board: kind "qemu" or "simavr", its machine (QEMU -M / simavr -m)
    and the CPU it emulates."""
    name: str
    kind: str
    machine: str
    cpu: str


@dataclasses.dataclass(frozen=True, eq=False)
class Board(Mapping):
    """One board of boards.json, typed. Derived properties answer every question code asks of a board; the
    mapping interface (board["title"], board.get(...)) reads the entry as written, plus "name"."""
    name: str
    title: str = None
    kind: str = "mcu"
    cpu: str = None
    clock_hz: int = None
    flash_bytes: int = None
    ram_bytes: int = None
    fqbn: str = None
    core: str = None
    core_version: str = None
    usb_ids: tuple = ()
    progmem: bool = False
    usb_cdc: bool = False
    emulator: str = None
    flash_wait_states: int = 0
    baud: int = None
    serial_wait_ms: int = None
    model_defaults: types.MappingProxyType = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    arch: str = None
    os: str = None
    cores: int = None
    ram_note: str = None
    entry: types.MappingProxyType = dataclasses.field(default=None, repr=False)

    # ------------------------------------------------------------------------------------------ the mapping view
    def __getitem__(self, key):
        if key == "name":
            return self.name
        return self.entry[key]

    def __iter__(self):
        return iter(["name", *(k for k in self.entry if k != "name")])

    def __len__(self):
        return len(self.entry) + (0 if "name" in self.entry else 1)

    def __eq__(self, other):
        return Mapping.__eq__(self, other)

    __hash__ = None

    # -------------------------------------------------------------------------------------- derived properties
    @property
    def is_linux(self):
        """A Linux single-board computer: it runs the .tflite with LiteRT instead of C code from the generator,
        so its stages differ (codegen.linux.targets)."""
        return self.kind == "linux"

    @property
    def is_mcu(self):
        return not self.is_linux

    @property
    def cpu_info(self):
        """The Cpu of an MCU board (None for a Linux board, or a CPU boards.json does not list)."""
        return None if self.is_linux else _tables()["cpus"].get(self.cpu)

    @property
    def family(self):
        """"linux", or the MCU's toolchain family: "arm" or "avr" (None when the CPU is not listed)."""
        if self.is_linux:
            return "linux"
        return self.cpu_info.family if self.cpu_info else None

    @property
    def family_info(self):
        return _tables()["families"].get(self.family)

    @property
    def is_avr(self):
        return self.family == "avr"

    @property
    def is_arm(self):
        return self.family == "arm"

    @property
    def gcc_flags(self):
        """The gcc flags that target this board's CPU (-mcpu=... or -mmcu=...); () when unknown."""
        return self.cpu_info.gcc_flags if self.cpu_info else ()

    @property
    def compiler(self):
        """(C compiler, size tool) of the board's toolchain family, or None."""
        f = self.family_info
        return (f.compiler, f.size_tool) if f else None

    @property
    def max_object_bytes(self):
        """The largest single object (array) the board's compiler accepts, or None (no limit that matters)."""
        f = self.family_info
        return f.max_object_bytes if f else None

    @property
    def emulator_info(self):
        return _tables()["emulators"].get(self.emulator) if self.emulator else None

    @property
    def emulator_kind(self):
        """"qemu", "simavr" or None (no emulator: `scons simulate` is not available)."""
        e = self.emulator_info
        return e.kind if e else None

    @property
    def emulator_machine(self):
        e = self.emulator_info
        return e.machine if e else None

    @property
    def has_emulator(self):
        return self.emulator_kind is not None

    @property
    def has_qemu(self):
        return self.emulator_kind == "qemu"

    @property
    def has_simavr(self):
        return self.emulator_kind == "simavr"

    @property
    def core_margin(self):
        """{"flash_bytes", "ram_bytes", "what", "family"}: what the board's Arduino core takes next to the model
        (boards.json "core_margins": the first key the board's "core" starts with, else "default")."""
        core = self.core or ""
        margins = _tables()["core_margins"]
        for prefix, margin in margins.items():
            if prefix != "default" and core.startswith(prefix):
                return dict(margin, family=prefix)
        return dict(margins["default"], family=core or "unknown")

    @property
    def serial_baud(self):
        """The baud rate the board's sketch prints at: its entry's "baud", else DEFAULT_BAUD."""
        return int(self.baud or DEFAULT_BAUD)

    @property
    def clock_mhz(self):
        """The clock in MHz (an int when whole): for text; the data holds clock_hz."""
        if not self.clock_hz:
            return None
        mhz = self.clock_hz / 1e6
        return int(mhz) if mhz == int(mhz) else mhz

    def signature(self, fields):
        """{"name": ..., field: value, ...} of `fields` (entry fields or derived properties), as JSON values: what
        a stage's parameter node holds of the board, so that only a change to these fields reruns the stage."""
        out = {"name": self.name}
        for field in fields:
            out[field] = _jsonable(getattr(self, field))
        return out


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _bad(name, field, problem):
    return ConfigError(f"board {name!r} in {_BOARDS_FILE}: {field} {problem}; fix the entry (`scons boards` "
                       "lists the boards)")


def _frozen(v):
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return types.MappingProxyType({k: _frozen(x) for k, x in v.items()})
    return v


def make(name, entry, *, strict=True):
    """A Board from a boards.json entry. strict (an entry of boards.json): every field known, every required one
    present, the CPU and emulator listed; not strict (a caller's partial mapping, e.g. a test's board): the
    known fields it gives, unchecked. A problem is one ConfigError naming the board and the field."""
    if not isinstance(entry, Mapping):
        raise _bad(name, "the entry", "is not an object")
    values = {}
    for field, value in entry.items():
        if field == "name":
            continue
        if field not in FIELDS:
            if strict:
                from .suggest import did_you_mean

                raise _bad(name, f"field {field!r}", "is not a board field" + did_you_mean(
                    field, FIELDS, " (did you mean {}?)") + f"; known fields: {', '.join(FIELDS)}")
            continue
        check, what = FIELDS[field]
        if not strict:              # a caller's mapping: taken as given (None: not given)
            if value is not None:
                values[field] = _frozen(value)
            continue
        if not check(value):
            raise _bad(name, field, f"is {value!r}, must be {what}")
        values[field] = _frozen(value)
    kind = values.get("kind", "mcu")
    if strict:
        missing = [f for f in REQUIRED[kind] if f not in values]
        if missing:
            raise _bad(name, ", ".join(missing), "missing" + (f" (a {kind} board needs {', '.join(REQUIRED[kind])})"))
        tables = _tables()
        if kind == "mcu" and values["cpu"] not in tables["cpus"]:
            raise _bad(name, "cpu", f"is {values['cpu']!r}, not one of boards.json's cpus: "
                                    f"{', '.join(tables['cpus'])} (add the CPU there)")
        emulator = values.get("emulator")
        if emulator is not None:
            if emulator not in tables["emulators"]:
                raise _bad(name, "emulator", f"is {emulator!r}, must be null or one of: "
                                             f"{', '.join(tables['emulators'])}")
            if tables["emulators"][emulator].cpu != values["cpu"]:
                raise _bad(name, "emulator", f"{emulator!r} emulates a {tables['emulators'][emulator].cpu}, not the "
                                             f"board's {values['cpu']}")
        if values.get("progmem") and tables["cpus"][values["cpu"]].family != "avr":
            raise _bad(name, "progmem", "is true on a CPU that is not an AVR (PROGMEM is AVR's flash space)")
    entry_view = {k: v for k, v in entry.items() if k != "name"}
    return Board(name=name, entry=types.MappingProxyType(entry_view), **values)


def _load():
    with open(_BOARDS_FILE) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{_BOARDS_FILE} is not valid JSON ({e}); fix the file") from None
    return data


_tables_cache = None


def _tables():
    """The shared tables of boards.json: cpus, families, emulators, core_margins (typed)."""
    global _tables_cache
    if _tables_cache is None:
        data = _load()

        def table(key, cls):
            try:
                return {k: cls(name=k, **{f: _frozen(x) for f, x in v.items()})
                        for k, v in data[key].items() if not k.startswith("_")}
            except (TypeError, KeyError, AttributeError) as e:
                raise ConfigError(f"{_BOARDS_FILE}: the {key!r} table is malformed ({e}); fix the file") from None

        margins = {k: dict(v) for k, v in data["core_margins"].items() if not k.startswith("_")}
        _tables_cache = {"cpus": table("cpus", Cpu), "families": table("families", Family),
                         "emulators": table("emulators", Emulator), "core_margins": margins}
    return _tables_cache


def cpu(name):
    """The Cpu `name` of boards.json's "cpus" (KeyError if absent)."""
    return _tables()["cpus"][name]


def family(name):
    """The toolchain Family `name` ("arm", "avr") of boards.json's "families"."""
    return _tables()["families"][name]


def emulator(name):
    """The Emulator `name` of boards.json's "emulators" (e.g. "qemu-mps2-an386")."""
    return _tables()["emulators"][name]


def core_margins():
    """{core prefix: {"flash_bytes", "ram_bytes", "what"}} and "default", as in boards.json."""
    return {k: dict(v) for k, v in _tables()["core_margins"].items()}


def all_boards():
    """{name: Board} of every board of boards.json, in the file's order."""
    global _cache
    if _cache is None:
        _cache = {name: make(name, entry) for name, entry in _load()["boards"].items()}
    return _cache


def get(name):
    boards = all_boards()
    if name not in boards:
        from .suggest import did_you_mean

        hint = did_you_mean(name, boards, "did you mean BOARD={}? ")
        raise ConfigError(f"BOARD={name!r} is not a known board; {hint}use one of: {', '.join(sorted(boards))} "
                          f"(or add an entry to {_BOARDS_FILE}; `scons boards` lists them)")
    return boards[name]


def board(value):
    """A Board from what callers pass as a board: a Board, a board's name, or a mapping (a former board dict,
    possibly partial, as tests and users' build files pass it: its known fields, unchecked)."""
    if isinstance(value, Board):
        return value
    if isinstance(value, str):
        return get(value)
    if isinstance(value, Mapping):
        return make(value.get("name"), value, strict=False)
    raise TypeError(f"not a board: {value!r}")


def stage_signature(board_, fields):
    """What a stage's parameter node holds of a board: its name and `fields` (Board.signature). A board that is
    not boards.json's own (a mapping a build file passed) is carried whole, as "entry", for its action."""
    b = board(board_)
    sig = b.signature(fields)
    if all_boards().get(b.name) is not b:
        sig["entry"] = _jsonable(dict(b))
    return sig


def entry_of(board_):
    """A board's whole entry as JSON values (a build file's own board is carried so, whole)."""
    return _jsonable(dict(board(board_)))


def from_signature(sig):
    """The Board a stage's parameter node names (stage_signature), or None: boards.json's, got back by name."""
    if not sig:
        return None
    return board(sig["entry"]) if "entry" in sig else get(sig["name"])


def is_linux(board_):
    """A Linux single-board computer (`"kind": "linux"`): it runs the .tflite with LiteRT instead of C code from
    the generator, so its stages differ (codegen.linux.targets)."""
    return board(board_).is_linux


def serial_baud(board_):
    """The baud rate the board's sketch prints at: its entry's "baud", else DEFAULT_BAUD."""
    return board(board_).serial_baud
