"""Serial ports and the boards on them, without arduino-cli: pyserial's `list_ports` (on Linux, macOS and
Windows) matched against the USB vendor/product ids in boards.json.

Used by `scons devices` (what is connected), `scons boards` (what is known) and the port detection of upload,
monitor and verify when arduino-cli is not installed.

Test hook: the environment variable TINYML_FAKE_PORTS, a JSON list of ports
(`[{"device": "/dev/pts/3", "vid": "0x2341", "pid": "0x805a", "description": "..."}]`), replaces pyserial's
answer. It exists for the tests (a pty with faked USB ids); a user has no reason to set it.
"""
import json
import os

from .. import boards as boards_mod
from ..errors import PipelineError

FAKE_PORTS_ENV = "TINYML_FAKE_PORTS"


def _hex(value):
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return f"0x{value:04x}"
    try:
        return f"0x{int(str(value), 16):04x}"
    except ValueError:          # not a USB id (a port listing's placeholder): compared as it is
        return str(value).lower()


def list_serial_ports():
    """[{address, vid, pid, description}] of the serial ports this machine has, vid/pid as 0x%04x or ''."""
    fake = os.environ.get(FAKE_PORTS_ENV)
    if fake is not None:
        try:
            raw = json.loads(fake)
        except json.JSONDecodeError as e:
            raise PipelineError(f"{FAKE_PORTS_ENV} is not JSON ({e.msg}); it is a test hook: unset it") from None
        return [{"address": p["device"], "vid": _hex(p.get("vid")), "pid": _hex(p.get("pid")),
                 "description": p.get("description", "")} for p in raw]
    from serial.tools import list_ports

    return [{"address": p.device, "vid": _hex(p.vid), "pid": _hex(p.pid),
             "description": p.description if p.description and p.description != "n/a" else ""}
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]


def boards_by_usb_id():
    """(vid, pid) -> names of the boards.json entries with that USB id."""
    out = {}
    for name, board in boards_mod.all_boards().items():
        for vid, pid in board.get("usb_ids", []):
            out.setdefault((_hex(vid), _hex(pid)), []).append(name)
    return out


def devices():
    """The serial ports with the boards each one's USB id names (empty list: not a known board)."""
    known = boards_by_usb_id()
    return [dict(p, boards=known.get((p["vid"], p["pid"]), [])) for p in list_serial_ports()]


def detect(board):
    """The one port whose USB id is `board`'s; a clear error for none or several (as with arduino-cli)."""
    return choose(list_serial_ports(), board)


def choose(ports, board):
    """The one of `ports` ({address, vid, pid} and, from arduino-cli, the "fqbns" it matched) that is `board`: by
    its USB id (boards.json usb_ids) or its fqbn; a clear error for none or several. pyserial's list and
    arduino-cli's `board list` both come here."""
    usb = {(_hex(v), _hex(p)) for v, p in board.get("usb_ids", [])}
    fqbn = _fqbn_base(board.get("fqbn"))
    found = [p for p in ports if (_hex(p["vid"]), _hex(p["pid"])) in usb
             or (fqbn and fqbn in map(_fqbn_base, p.get("fqbns", [])))]
    if not found:
        seen = "; ".join(f"{p['address']} (vid {p['vid'] or '?'} pid {p['pid'] or '?'}"
                         f"{', ' + ', '.join(filter(None, p['fqbns'])) if any(p.get('fqbns', [])) else ''})"
                         for p in ports)
        raise PipelineError(f"no {board['title']} found on any serial port (seen: {seen or 'no ports'}); connect "
                            "it (double-tap reset for the bootloader), see `scons devices`, or pass PORT=")
    if len(found) > 1:
        raise PipelineError(f"several {board['title']} boards found: {', '.join(p['address'] for p in found)}; "
                            "pick one with PORT=")
    return found[0]["address"]


def _fqbn_base(fqbn):
    return ":".join((fqbn or "").split(":")[:3])


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()   # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def devices_text():
    """`scons devices`: one row per serial port, with the board its USB id says it is."""
    found = devices()
    if not found:
        return ("no serial ports found: connect the board with a data USB cable (double-tap reset shows the "
                "bootloader's port); `scons boards` lists the boards this tool knows")
    rows = [[p["address"], f"{p['vid']}:{p['pid']}" if p["vid"] else "-", ", ".join(p["boards"]) or "-",
             p["description"] or "-"] for p in found]
    text = _table(["port", "usb id", "board (BOARD=)", "description"], rows)
    known = [p for p in found if p["boards"]]
    if known:
        p = known[0]
        text += f"\n\nupload to it: scons upload BOARD={p['boards'][0]} PORT={p['address']}"
    return text


def _size(n):
    return f"{n // 1024:,} KB" if n < 1 << 20 else f"{n / (1 << 20):g} MB"


def boards_rows():
    """[name, title, kind, flash, RAM, emulator] for every board of boards.json."""
    rows = []
    for name, b in sorted(boards_mod.all_boards().items()):
        linux = boards_mod.is_linux(b)
        rows.append([name, b.get("title", name), "Linux (LiteRT)" if linux else b.get("cpu", "MCU"),
                     "-" if linux else _size(b["flash_bytes"]), "-" if linux else _size(b["ram_bytes"]),
                     b.get("emulator") or "-"])
    return rows


def boards_text():
    """`scons boards`: the known boards as a table."""
    return (_table(["BOARD=", "board", "cpu", "flash", "RAM", "emulator (scons simulate)"], boards_rows())
            + "\n\nconnected ones: scons devices")
