"""`scons devices`, `scons boards` and port detection without arduino-cli: pyserial's port list matched against
boards.json's USB ids. A pty stands in for the board; its USB id is faked through the documented test hook
TINYML_FAKE_PORTS (codegen/device/ports.py), or by replacing pyserial's comports() in-process."""
import json
import subprocess

import pytest

from codegen import boards

from codegen.device import ports
from codegen.errors import PipelineError
from helpers import ROOT, scons_exe
from test_monitor import PtyBoard

NANO = boards.get("nano33ble")


@pytest.fixture
def board():
    pty = PtyBoard()
    yield pty
    pty.hang_up()


def _fake(*entries):
    return {ports.FAKE_PORTS_ENV: json.dumps([{"device": d, "vid": v, "pid": p, "description": "USB serial"}
                                             for d, v, p in entries])}


def _scons(*args, env=None, timeout=60):
    import os

    return subprocess.run([scons_exe(), "-C", ROOT, "-Q", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_pyserial_ports_are_matched_by_usb_id(monkeypatch, board):
    """The real pyserial path: comports() answers ListPortInfo objects (ints for vid/pid)."""
    from serial.tools import list_ports, list_ports_common

    def info(device, vid, pid):
        port = list_ports_common.ListPortInfo(device, skip_link_detection=True)
        port.vid, port.pid, port.description = vid, pid, "USB serial"
        return port

    vid, pid = (int(x, 16) for x in NANO["usb_ids"][0])
    monkeypatch.delenv(ports.FAKE_PORTS_ENV, raising=False)
    monkeypatch.setattr(list_ports, "comports", lambda: [info("/dev/ttyS0", None, None), info(board.path, vid, pid)])
    found = {p["address"]: p["boards"] for p in ports.devices()}
    assert found == {"/dev/ttyS0": [], board.path: ["nano33ble"]}
    assert ports.detect(NANO) == board.path


def test_every_usb_id_of_boards_json_is_recognised():
    """Property over boards.json: each board's every USB id, faked on a port, is detected as that board (boards
    sharing an id, like nano33ble and nano33ble_sense, are each detected on it)."""
    import os

    for name, entry in boards.all_boards().items():
        for vid, pid in entry.get("usb_ids", []):
            os.environ[ports.FAKE_PORTS_ENV] = json.dumps([{"device": "/dev/fake0", "vid": vid.upper(), "pid": pid}])
            try:
                assert ports.detect(dict(entry, name=name)) == "/dev/fake0", (name, vid, pid)
                assert name in ports.devices()[0]["boards"]
            finally:
                del os.environ[ports.FAKE_PORTS_ENV]


def test_detection_errors_say_what_to_do():
    import os

    os.environ[ports.FAKE_PORTS_ENV] = "[]"
    try:
        with pytest.raises(PipelineError, match=r"no Arduino Nano 33 BLE found .*seen: no ports.*scons devices"):
            ports.detect(NANO)
        vid, pid = NANO["usb_ids"][0]
        os.environ[ports.FAKE_PORTS_ENV] = json.dumps([{"device": d, "vid": vid, "pid": pid} for d in ("/a", "/b")])
        with pytest.raises(PipelineError, match="several Arduino Nano 33 BLE boards found: /a, /b; pick one"):
            ports.detect(NANO)
    finally:
        del os.environ[ports.FAKE_PORTS_ENV]


def test_scons_devices_lists_a_connected_board(board):
    vid, pid = NANO["usb_ids"][0]
    proc = _scons("devices", env=_fake((board.path, vid, pid), ("/dev/ttyS9", None, None)))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in proc.stdout.splitlines() if line.startswith("/dev/")}
    expected = ", ".join(ports.boards_by_usb_id()[(vid, pid)])
    assert rows[board.path][0] == f"{vid}:{pid}" and rows[board.path][1].startswith(expected + " "), proc.stdout
    assert rows["/dev/ttyS9"][0] == "-", proc.stdout
    assert f"scons upload BOARD=nano33ble PORT={board.path}" in proc.stdout


def test_scons_devices_with_nothing_connected_says_what_to_do():
    proc = _scons("devices", env=_fake())
    assert proc.returncode == 0 and "no serial ports found: connect the board" in proc.stdout, proc.stdout


def test_scons_boards_lists_boards_json():
    proc = _scons("boards")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines()[2:] if line.strip() and not line.startswith("connected")}
    assert listed == set(boards.all_boards()), proc.stdout


def test_listings_run_alone():
    proc = _scons("boards", "check")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: `scons boards` lists and builds nothing; run it alone"


def test_scons_monitor_finds_the_port_without_arduino_cli(board, tmp_path):
    """No PORT=, no arduino-cli: the port comes from pyserial's list by the board's USB id."""
    vid, pid = NANO["usb_ids"][1]
    board.say(["hello from the board\r\n"], delay=1, pause=0.1, rounds=100)
    proc = _scons("monitor", "MONITOR_TIMEOUT=3", f"BUILD_DIR={tmp_path}", "ARDUINO_CLI=no-such-arduino-cli",
                  env=_fake(("/dev/ttyS9", None, None), (board.path, vid, pid)))
    assert proc.returncode == 0, proc.stderr
    assert "hello from the board\n" in proc.stdout


def test_scons_monitor_without_arduino_cli_or_board_is_one_error_line(tmp_path):
    proc = _scons("monitor", f"BUILD_DIR={tmp_path}", "ARDUINO_CLI=no-such-arduino-cli", env=_fake())
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and "no Arduino Nano 33 BLE found on any serial port" in errors[0] \
        and "arduino-cli" not in errors[0], proc.stderr
