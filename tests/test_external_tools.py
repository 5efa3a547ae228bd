"""arduino-cli's exit status, output shape and produced files are all checked; a hung one is stopped on a
timeout the user sets; PORT= must be a device (issue 11, items 7-8). Fast: stand-in scripts."""
import os
import re
import time

import pytest

from codegen import boards
from codegen.device import arduino
from codegen.errors import PipelineError

BOARD = boards.get("nano33ble")


def _cli(tmp_path, body):
    path = tmp_path / "arduino-cli"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


CORES = 'if [ "$1" = core ]; then echo \'{"platforms": [{"id": "arduino:mbed_nano"}]}\'; exit 0; fi\n'


@pytest.mark.parametrize("answer,needle", [
    ("echo 'arduino-cli Version: 0.18 (no json here)'", "did not answer in JSON"),
    ("echo '\"just a string\"'", "unexpected shape"),
    ("echo '{\"platforms\": 3}'", "unexpected JSON"),
    ("echo ''", "did not answer in JSON"),
])
def test_odd_core_list_output_is_not_called_a_missing_core(tmp_path, answer, needle):
    with pytest.raises(PipelineError) as err:
        arduino.installed_cores(_cli(tmp_path, answer))
    assert needle in str(err.value) and "not installed" not in str(err.value)


def test_compile_that_writes_no_firmware_is_not_recorded(tmp_path):
    cli = _cli(tmp_path, CORES + 'echo \'{"success": true, "builder_result": {}}\'')
    (tmp_path / "sk").mkdir()
    record = tmp_path / "firmware" / "compile.json"
    with pytest.raises(PipelineError, match="wrote no firmware"):
        arduino.compile_sketch(cli, str(tmp_path / "sk"), BOARD, str(tmp_path / "b"), str(tmp_path / "firmware"),
                               str(record))
    assert not record.exists()


def test_a_hung_arduino_cli_that_ignores_sigterm_is_stopped_on_the_timeout(tmp_path, monkeypatch):
    cli = _cli(tmp_path, "trap '' TERM; sleep 60 & wait; sleep 60")
    monkeypatch.setenv("ARDUINO_CLI_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(PipelineError, match="did not finish in 1 s.*ARDUINO_CLI_TIMEOUT"):
        arduino.installed_cores(cli)
    assert time.monotonic() - start < 10
    monkeypatch.setenv("ARDUINO_CLI_TIMEOUT", "soon")
    with pytest.raises(PipelineError, match="ARDUINO_CLI_TIMEOUT='soon'"):
        arduino.installed_cores(cli)


def test_port_must_be_a_device(tmp_path):
    (tmp_path / "ttyACM0").write_text("")
    for port, needle in ((str(tmp_path / "ttyACM0"), "is a regular file, not a serial port"),
                         (str(tmp_path), "is a folder"), (str(tmp_path / "nope"), "does not exist")):
        with pytest.raises(PipelineError, match=needle):
            arduino.check_port(port)
    assert arduino.check_port("/dev/null") == "/dev/null" and arduino.check_port("COM3") == "COM3"


def test_a_stop_request_from_the_main_thread_ends_a_hung_arduino_cli_in_a_worker_thread(tmp_path):
    """scons -j2 runs stages in worker threads, which no signal handler reaches: the main thread's handler
    calls codegen.interrupt.request_stop, which must end a child that ignores SIGTERM at once. In a subprocess:
    a stop request is final for the process that makes it."""
    import subprocess
    import sys

    cli = _cli(tmp_path, "trap '' TERM; sleep 60 & wait; sleep 60")
    script = f"""
import sys, threading, time
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from codegen import interrupt
from codegen.device import arduino
outcome = []
def stage():
    try:
        arduino.installed_cores({cli!r})
    except KeyboardInterrupt:
        outcome.append("interrupted")
worker = threading.Thread(target=stage)
worker.start()
time.sleep(1.0)
start = time.monotonic()
interrupt.request_stop()
worker.join(20)
print(outcome, round(time.monotonic() - start, 1))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    outcome, seconds = proc.stdout.rsplit(" ", 1)
    assert outcome == "['interrupted']", proc.stdout + proc.stderr
    assert float(seconds) < 5


def test_children_of_a_stage_thread_do_not_inherit_its_blocked_signals():
    """Stage worker threads block SIGINT/SIGTERM (so that the main thread gets them); a child inherits its
    thread's mask, and would ignore Ctrl-C at the terminal and a plain `kill`. codegen.proc unblocks them for it."""
    import signal
    import threading

    from codegen import interrupt, proc

    seen = {}

    def stage():
        interrupt.block_stop_signals()
        status = proc.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
        seen["child"] = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        seen["thread"] = signal.pthread_sigmask(signal.SIG_BLOCK, set())

    worker = threading.Thread(target=stage)
    worker.start()
    worker.join(30)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        assert not seen["child"] & (1 << (sig - 1)), hex(seen["child"])
        assert sig in seen["thread"]                # the stage's thread keeps them blocked
