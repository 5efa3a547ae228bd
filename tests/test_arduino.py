"""arduino-cli glue without arduino-cli: port selection, the score check (`verify`) on a pseudo-terminal."""
import json
import os
import threading

import pytest

from codegen.device import arduino

from codegen.device import boards
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
