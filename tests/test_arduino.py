"""arduino-cli glue without arduino-cli: port selection, the score check (`verify`) on a pseudo-terminal."""
import json
import os
import threading

import pytest

from codegen.device import arduino
from helpers import FakeBoard

from codegen import boards
from codegen.errors import PipelineError

NANO = boards.get("nano33ble")


def _list(*ports, legacy=False):
    entries = [{"port": {"address": a, "protocol": "serial", "properties": {"vid": v, "pid": p}},
                **({"matching_boards": [{"name": "x", "fqbn": f}]} if f else {})} for a, v, p, f in ports]
    return entries if legacy else {"detected_ports": entries}


def test_port_by_fqbn_and_by_usb_id():
    assert arduino.select_port(_list(("/dev/ttyACM0", "0x2341", "0x805A", "arduino:mbed_nano:nano33ble"),
                                     ("/dev/ttyS0", "", "", "")), NANO) == "/dev/ttyACM0"
    # bootloader mode: no fqbn match, but the USB vid/pid is the board's (case-insensitive)
    assert arduino.select_port(_list(("/dev/ttyACM3", "0x2341", "0x005A", "")), NANO) == "/dev/ttyACM3"
    assert arduino.select_port(_list(("COM4", "0x2341", "0x805a", ""), legacy=True), NANO) == "COM4"


def test_no_port_lists_what_was_seen():
    with pytest.raises(PipelineError, match=r"no Arduino Nano 33 BLE found.*?/dev/ttyUSB0 \(vid 0x1a86 pid 0x7523"):
        arduino.select_port(_list(("/dev/ttyUSB0", "0x1a86", "0x7523", "")), NANO)
    with pytest.raises(PipelineError, match="no ports"):
        arduino.select_port(_list(), NANO)


def test_several_ports_ask_for_port():
    with pytest.raises(PipelineError, match=r"several .*?/dev/ttyACM0, /dev/ttyACM1; pick one with PORT="):
        arduino.select_port(_list(("/dev/ttyACM0", "0x2341", "0x805a", ""),
                                  ("/dev/ttyACM1", "0x2341", "0x805a", "")), NANO)


EXPECTED = {"images": [{"title": "Car", "scores": [3, 252], "argmax": 1, "top": "target",
                        "line": "Car: target 98.4% [3, 252]"},
                       {"title": "Other object", "scores": [250, 5], "argmax": 0, "top": "random",
                        "line": "Other object: random 97.7% [250, 5]"}]}


def _pty_board(lines, delay=0.05):
    """A pseudo-terminal standing in for the board: returns the port path; a thread writes the lines."""
    import time

    master, slave = os.openpty()
    path = os.ttyname(slave)

    def talk():
        time.sleep(0.5)        # verify opens (and flushes) the port first, like a board that keeps printing
        for line in lines:
            os.write(master, line.encode())
            time.sleep(delay)

    threading.Thread(target=talk, daemon=True).start()
    return path, (master, slave)


def test_verify_reads_and_checks_scores(tmp_path):
    exp = tmp_path / "expected.json"
    exp.write_text(json.dumps(EXPECTED))
    # caught mid-round: the board's previous round ends with the second input
    port, fds = _pty_board(["garbage from boot\r\n", "5\r\n", "Other object: random 97.7% [250, 5]\r\n",
                            "Car: target 98.4% [3, 252]\r\n", "Other object: random 97.7% [250, 5]\r\n"])
    summary = arduino.verify(port, str(exp), timeout_s=10)
    assert summary["exact"] and [r["scores"] for r in summary["images"]] == [[3, 252], [250, 5]]
    assert [r["line"] for r in summary["images"]] == [e["line"] for e in EXPECTED["images"]]
    for fd in fds:
        os.close(fd)


def test_verify_wrong_scores_and_timeout(tmp_path):
    exp = tmp_path / "expected.json"
    exp.write_text(json.dumps(EXPECTED))
    port, fds = _pty_board(["Car: random 98.4% [252, 3]\r\n", "Other object: random 97.7% [250, 5]\r\n"])
    with pytest.raises(PipelineError, match="Car: board says class 0"):
        arduino.verify(port, str(exp), timeout_s=10)
    port2, fds2 = _pty_board(["Car: target 98.4% [3, 252]\r\n"])
    with pytest.raises(PipelineError, match="no complete results .* within 1 s"):
        arduino.verify(port2, str(exp), timeout_s=1)
    with pytest.raises(PipelineError, match="PORT=/dev/nonexistent does not exist"):
        arduino.verify("/dev/nonexistent", str(exp), timeout_s=1)
    for fd in (*fds, *fds2):
        os.close(fd)


# ------------------------------------------------------------------------------------------------ upload (issue 18)
FAKE_CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "fake_arduino_cli.py")


@pytest.fixture
def compiled(tmp_path, monkeypatch):
    """A sketch compiled by the arduino-cli stand-in (with its build id); returns (compile.json, uploads())."""
    sketch = tmp_path / "tvm_model"
    (sketch / "src").mkdir(parents=True)
    (sketch / "tvm_model.ino").write_text("void setup() {}\nvoid loop() {}\n")
    (sketch / "src" / "model.h").write_text("/* model */\n")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_ARDUINO_LOG", str(log))
    result = tmp_path / "firmware" / "compile.json"
    arduino.compile_sketch(FAKE_CLI, str(sketch), NANO, str(tmp_path / "build"), str(tmp_path / "firmware"),
                           str(result), staged_dir=str(tmp_path / "staged" / "tvm_model"))

    def uploads():
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return [json.loads(l) for l in lines if json.loads(l)[0] == "upload"]

    uploads()
    return result, uploads


def _upload(tmp_path, compile_json, port, **kw):
    return arduino.upload(FAKE_CLI, NANO, port, str(tmp_path / "firmware"), str(tmp_path / "tvm_model"),
                          str(compile_json), probe_timeout_s=1.5, **kw)


def test_build_id_is_compiled_in_and_covers_sources_board_and_flags(compiled, tmp_path):
    result, _ = compiled
    ident = json.loads(result.read_text())["build_id"]
    header = (tmp_path / "staged" / "tvm_model" / "tinyml_build_id.h").read_text()
    assert f'#define TINYML_BUILD_ID "{ident}"' in header and len(ident) == 16
    assert not (tmp_path / "tvm_model" / "tinyml_build_id.h").exists()   # the rendered sketch: untouched
    sketch = str(tmp_path / "tvm_model")
    assert arduino.build_id(sketch, NANO["fqbn"], []) == ident
    others = {arduino.build_id(sketch, "arduino:avr:mega", []), arduino.build_id(sketch, NANO["fqbn"], ["-v"])}
    (tmp_path / "tvm_model" / "src" / "model.h").write_text("/* model 2 */\n")
    others.add(arduino.build_id(sketch, NANO["fqbn"], []))
    os.rename(tmp_path / "tvm_model" / "src" / "model.h", tmp_path / "tvm_model" / "src" / "model2.h")
    others.add(arduino.build_id(sketch, NANO["fqbn"], []))
    assert ident not in others and len(others) == 4


def test_upload_skips_only_a_board_that_reports_this_build(compiled, tmp_path):
    """Case 4: the skip came from a local record (firmware/upload.json), so a board reflashed from the IDE in
    between was skipped. Now the board on the port is asked."""
    result, uploads = compiled
    ident = json.loads(result.read_text())["build_id"]
    board = FakeBoard(runs=ident)
    try:
        port, uploaded, why = _upload(tmp_path, result, board.port)
        assert not uploaded and uploads() == [] and f"reports build id {ident}" in why and "skipped" in why
        board.runs = "0123456789abcdef"                 # reflashed from the IDE with another build
        port, uploaded, why = _upload(tmp_path, result, board.port)
        assert uploaded and "runs build 0123456789abcdef" in why
        assert [c[:2] for c in uploads()] == [["upload", "--fqbn"]]
        board.runs = None                               # another program: prints no build id
        port, uploaded, why = _upload(tmp_path, result, board.port)
        assert uploaded and "printed no build id in 1.5 s" in why and len(uploads()) == 1
        board.runs = ident
        port, uploaded, why = _upload(tmp_path, result, board.port, force=True)
        assert uploaded and "FORCE=1" in why and len(uploads()) == 1
    finally:
        board.close()


def test_upload_says_why_when_the_port_cannot_be_read(compiled, tmp_path):
    result, uploads = compiled
    ident = json.loads(result.read_text())["build_id"]
    board = FakeBoard(runs=ident)
    try:
        def busy(port, baud, timeout):
            import errno

            raise OSError(errno.EBUSY, "Device or resource busy")

        port, uploaded, why = _upload(tmp_path, result, board.port, serial_factory=busy)
        assert uploaded and len(uploads()) == 1
        assert why.startswith("cannot read the board's build id (") and "is busy" in why and "to be sure" in why
    finally:
        board.close()
