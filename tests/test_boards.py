"""The typed Board (codegen.boards): every boards.json entry loads and its derived properties agree with
the data; a bad entry is one ConfigError naming the board and the field; a stage's signature holds only the board
fields its action uses, so editing a board's USB ids or title reruns none of memory, simulate, compile."""
import json
import os
import subprocess
import sys

import pytest

from codegen import codeversion
from codegen import boards
from codegen.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raw():
    with open(boards._BOARDS_FILE) as f:
        return json.load(f)


def test_every_board_loads_and_its_derived_properties_agree_with_the_data():
    raw = _raw()
    assert list(boards.all_boards()) == list(raw["boards"])
    for name, entry in raw["boards"].items():
        b = boards.get(name)
        assert isinstance(b, boards.Board) and b.name == name and b.title == entry["title"]
        assert boards.get(name) is b                                    # loaded once
        assert dict(b) == dict(entry, name=name)                        # the mapping view is the entry
        assert b["title"] == entry["title"] and b.get("fqbn") == entry.get("fqbn")
        assert b.is_linux == (entry.get("kind") == "linux") == boards.is_linux(b) == (b.family == "linux")
        if b.is_linux:
            assert not b.has_emulator and b.gcc_flags == () and b.clock_mhz * 1_000_000 == entry["clock_hz"]
            continue
        cpu = raw["cpus"][entry["cpu"]]
        assert b.family == cpu["family"] and list(b.gcc_flags) == cpu["gcc_flags"]
        assert b.is_avr == (cpu["family"] == "avr") == bool(entry.get("progmem"))
        family = raw["families"][b.family]
        assert b.compiler == (family["compiler"], family["size_tool"])
        assert b.max_object_bytes == family["max_object_bytes"]
        emulator = raw["emulators"].get(entry.get("emulator"))
        assert b.has_emulator == (emulator is not None) == bool(entry.get("emulator"))
        if emulator:
            assert b.emulator_kind == emulator["kind"] and b.emulator_machine == emulator["machine"]
            assert b.has_qemu == (emulator["kind"] == "qemu") and b.has_simavr == (emulator["kind"] == "simavr")
            assert emulator["cpu"] == b.cpu
        margin = b.core_margin
        assert entry["core"].startswith(margin["family"])
        assert {k: margin[k] for k in ("flash_bytes", "ram_bytes", "what")} == raw["core_margins"][margin["family"]]
        assert b.serial_baud == (entry.get("baud") or boards.DEFAULT_BAUD)
        assert b.flash_wait_states == entry.get("flash_wait_states", 0)


def test_the_facts_that_were_code_are_the_data():
    from codegen.device import memreport
    from codegen.emit import mlf
    from codegen.runners import qemu
    from codegen.tflm import library

    raw = _raw()
    m4 = raw["cpus"][raw["emulators"]["qemu-mps2-an386"]["cpu"]]["gcc_flags"]
    assert list(qemu.ARCH_FLAGS) == m4 == list(library.TOOLCHAINS["cortex-m4"]["arch"])
    assert qemu.MACHINE == raw["emulators"]["qemu-mps2-an386"]["machine"]
    assert mlf.AVR_MAX_OBJECT_BYTES == memreport.AVR_MAX_OBJECT_BYTES == 32767 == boards.get("uno").max_object_bytes
    assert memreport.CORE_MARGINS["arduino:avr"] == raw["core_margins"]["arduino:avr"]
    assert boards.get("nano33ble").max_object_bytes is None


def _entry(**changes):
    entry = dict(_raw()["boards"]["nano33ble"])
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not ...}


@pytest.mark.parametrize("changes, field", [
    ({"usb_idz": []}, "usb_idz"),                                   # an unknown field
    ({"ram_bytes": "256K"}, "ram_bytes"),
    ({"ram_bytes": 0}, "ram_bytes"),
    ({"progmem": "no"}, "progmem"),
    ({"kind": "fpga"}, "kind"),
    ({"usb_ids": [["0x2341"]]}, "usb_ids"),
    ({"usb_ids": [["0x2341", "zz"]]}, "usb_ids"),
    ({"cpu": "cortex-m99"}, "cpu"),
    ({"emulator": "qemu-nowhere"}, "emulator"),
    ({"emulator": "simavr-atmega328p"}, "emulator"),                # emulates another CPU
    ({"progmem": True}, "progmem"),                                 # PROGMEM on an ARM
    ({"clock_hz": ...}, "clock_hz"),                                # a required field missing
])
def test_a_bad_entry_is_one_config_error_naming_board_and_field(changes, field):
    with pytest.raises(ConfigError) as e:
        boards.make("myboard", _entry(**changes))
    message = str(e.value)
    assert "'myboard'" in message and field in message and "\n" not in message, message


def test_a_bad_boards_json_fails_on_load_naming_the_board(tmp_path, monkeypatch):
    raw = _raw()
    raw["boards"]["mine"] = dict(raw["boards"]["uno"], flash_byte=1)
    path = tmp_path / "boards.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setattr(boards, "_BOARDS_FILE", str(path))
    monkeypatch.setattr(boards, "_cache", None)
    monkeypatch.setattr(boards, "_tables_cache", None)
    with pytest.raises(ConfigError, match=r"board 'mine' .*field 'flash_byte' is not a board field \(did you mean "
                                          r"flash_bytes\?\)"):
        boards.get("uno")


def test_a_mapping_is_a_board_too():
    """Former board dicts (tests', users' build files') still work where a Board is expected."""
    tiny = boards.board({"name": "tiny", "title": "Tiny", "cpu": "cortex-m4f", "core": "arduino:mbed_nano",
                         "flash_bytes": 40000, "ram_bytes": 30000})
    assert tiny.is_arm and not tiny.is_avr and tiny.core_margin["family"] == "arduino:mbed" and tiny["title"] == "Tiny"
    assert boards.board("mega") is boards.get("mega") and boards.board(boards.get("mega")) is boards.get("mega")
    assert boards.serial_baud({"baud": 9600}) == 9600 and boards.serial_baud({}) == boards.DEFAULT_BAUD
    sig = boards.stage_signature(tiny, ("ram_bytes",))
    assert sig["entry"]["title"] == "Tiny" and boards.from_signature(sig).ram_bytes == 30000
    assert "entry" not in boards.stage_signature(boards.get("uno"), ("ram_bytes",))


def test_boards_json_is_not_part_of_a_stage_code_version():
    """Its facts enter each stage's signature as the fields the stage uses: the file itself must not (editing one
    board's USB ids would otherwise rerun every stage whose code imports codegen.device)."""
    files = {os.path.relpath(f, codeversion.PACKAGE_DIR) for f in codeversion.files_of(["codegen.device.memreport"])}
    assert "boards.py" in files and "boards.json" not in files


# The parameter node of each stage builder, for a board as boards.json has it or with one field edited: each in
# a fresh interpreter (the site tools load SCons; one SCons node tree declares a target once).
_SIGNATURES = r"""
import json, sys
sys.path[:0] = [ROOT, os.path.join(ROOT, "site_scons", "site_tools")]
import SCons.Environment
from codegen import boards

def params(node):
    return [s for s in node.sources if type(s).__name__ == "Value" and s.read().startswith("{")][-1].read()

def signatures(name):
    env = SCons.Environment.Environment(tools=["tinyml"], toolpath=[os.path.join(ROOT, "site_scons", "site_tools")])
    b = boards.get(name)
    out = {"memory": params(env.TinyMemoryReport("b", "m.tar", b)[0]),
           "simulate": params(env.TinySimulate("b", "m.tar", ["i.c", "i.h", "i.json"], "e.json", ["b/s/s.ino"], b,
                                               sketch_name="s")[0]),
           "compile": params(env.TinyArduinoCompile("b", ["b/s/s.ino"], b, sketch_name="s", cli="arduino-cli",
                                                    flags=[], memory="b/memory.json")[0])}
    if b.has_qemu:
        out["profile"] = params(env.TinyProfile("b", "m.tar", ["i.c", "i.h", "i.json"], b)[0])
    return out

name, field, value = CASE
if field:
    entry = dict(boards.all_boards()[name].entry)
    entry[field] = value
    boards.all_boards()[name] = boards.make(name, entry)       # as if boards.json said so
print(json.dumps(signatures(name)))
"""


def test_a_stage_signature_holds_only_the_board_fields_its_action_uses(tmp_path):
    cases = [(name, field, value) for name in ("nano33ble", "mega") for field, value in (
        (None, None), ("usb_ids", [["0x1234", "0x5678"]]), ("title", "Renamed"), ("ram_bytes", 4096),
        ("clock_hz", 8_000_000), ("fqbn", "arduino:avr:other"))]
    sig = {}
    for name, field, value in cases:
        code = f"import os\nROOT = {ROOT!r}\nCASE = {(name, field, value)!r}\n" + _SIGNATURES
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        sig[f"{name} {field}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("nano33ble", "mega"):
        base = sig[f"{name} None"]
        changed = {field: {stage for stage in base if sig[f"{name} {field}"][stage] != base[stage]}
                   for field in ("usb_ids", "title", "ram_bytes", "clock_hz", "fqbn")}
        assert changed["usb_ids"] == set(), name          # the port is found at upload time, by name
        # the title is shown in memory.json/memory.txt (so memory reruns), nowhere in simulate's or compile's output
        assert changed["title"] == {"memory"}, name
        assert "memory" in changed["ram_bytes"] and "compile" not in changed["ram_bytes"], name
        assert changed["fqbn"] >= {"compile"} and "memory" not in changed["fqbn"], name
        if name == "nano33ble":     # QEMU: the clock gives the estimated ms; the RAM size is not used
            assert changed["clock_hz"] == {"simulate", "profile"} and "simulate" not in changed["ram_bytes"]
        else:                       # simavr: the sketch must fit the board's flash and RAM
            assert changed["clock_hz"] == set() and "simulate" in changed["ram_bytes"]
