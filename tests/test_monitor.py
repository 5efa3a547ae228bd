"""`scons monitor` (miniterm, or an echo of the port when stdin is not a terminal), `scons verify` (the board's
scores against TFLite's, exact unless TOLERANCE=) and the sketch's result lines (label, confidence, inference
time, TVMExecute's return code) on the host stand-in and in simavr."""
import errno
import io
import json
import os
import subprocess
import tarfile
import threading
import time

import pytest

from helpers import ROOT, run_scons, scons_exe
from codegen import boards
from codegen.device import arduino
from codegen.emit import sketch
from codegen.errors import PipelineError
from codegen.runners import hostcheck
from codegen.modelio.quantio import confidence_constants

TEMPLATES = os.path.join(ROOT, "templates", "sketch")
LABELS = ["random", "target", "third"]
MULTIPLIER, SHIFT = confidence_constants(1 / 256)
OUTPUT = {"dtype": "uint8", "shape": [1, 3], "size": 3, "scale": 1 / 256, "zero_point": 0, "softmax": True,
          "confidence_multiplier": MULTIPLIER, "confidence_shift": SHIFT}
INPUTS = {"image_car": ("Car", [10, 80, 5, 0]), "image_other": ("Other object", [70, 2, 3, 0])}


def standin_scores(raw):
    """What the stand-in model below computes (output[k] = 3 * input[k] + k)."""
    return [(3 * v + k) % 256 for k, v in enumerate(raw[:3])]


# A stand-in for the TVM-generated library: real C with the MLF's API and file names, small enough for an AVR
# and fast to build; -DSTANDIN_RC=<code> makes every run fail with that code.
STANDIN_H = "#include <stdint.h>\nint32_t tvmgen_default_run(const uint8_t* input, uint8_t* output);\n"
STANDIN_C = """#include "tvmgen_default.h"
#ifndef STANDIN_RC
#define STANDIN_RC 0
#endif
int32_t tvmgen_default_run(const uint8_t* input, uint8_t* output) {
  uint8_t k;
  if (STANDIN_RC != 0) return STANDIN_RC;
  for (k = 0; k < 3; k++) output[k] = (uint8_t)(3 * input[k] + k);
  return 0;
}
"""


def expected_json(path):
    images = []
    for name, (title, raw) in INPUTS.items():
        scores = standin_scores(raw)
        top = hostcheck.top_index(scores)
        images.append({"name": name, "title": title, "scores": scores, "argmax": top, "top": LABELS[top],
                       "line": hostcheck.result_line(title, scores, LABELS, OUTPUT)})
    path.write_text(json.dumps({"images": images}))
    return {"images": images}


def render_standin_sketch(tmp_path, board_name):
    """The project's sketch templates rendered for `board_name` over the stand-in model; returns its folder."""
    board = boards.get(board_name)
    meta = {"inputs": [{"name": "x", "shape": [1, 4], "dtype": "uint8", "size_bytes": 4}],
            "outputs": [{"name": "y", "shape": [1, 3], "dtype": "uint8", "size_bytes": 3}],
            "workspace_size_bytes": 0}
    files = {"metadata.json": json.dumps(meta).encode(), "codegen/host/include/tvmgen_default.h": STANDIN_H.encode(),
             "codegen/host/src/default_lib0.c": STANDIN_C.encode()}
    files.update({f"codegen/host/src/default_lib{i}.c": b"/* empty */\n" for i in (1, 2)})
    with tarfile.open(tmp_path / "m.tar", "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    progmem = board["progmem"]
    h = ["#include <stdint.h>"]
    if progmem:
        h += ["#if defined(__AVR__)", "#include <avr/pgmspace.h>", "#define IMAGES_STORAGE PROGMEM", "#else",
              "#define IMAGES_STORAGE", "#endif"]
    else:
        h += ["#define IMAGES_STORAGE"]
    h += ['#ifdef __cplusplus\nextern "C" {\n#endif']
    c = ['#include "images.h"']
    for name, (_, raw) in INPUTS.items():
        h.append(f"extern const uint8_t {name}[4];")
        c.append(f"const uint8_t {name}[4] IMAGES_STORAGE = {{{', '.join(map(str, raw))}}};")
    h += ["#ifdef __cplusplus\n}\n#endif"]
    (tmp_path / "images.h").write_text("\n".join(h) + "\n")
    (tmp_path / "images.c").write_text("\n".join(c) + "\n")
    (tmp_path / "images.json").write_text(json.dumps({
        "progmem": progmem, "labels": LABELS, "output": OUTPUT,
        "images": [{"name": n, "title": t, "label": n} for n, (t, _) in INPUTS.items()]}))
    out = tmp_path / "sk"
    sketch.render(TEMPLATES, str(out), "sk", str(tmp_path / "m.tar"), str(tmp_path / "images.c"),
                  str(tmp_path / "images.h"), str(tmp_path / "images.json"),
                  {"board": board, "classes": LABELS, "baud": boards.serial_baud(board)})
    return out


# ------------------------------------------------------------------------------------------ the line format
def test_result_lines_carry_the_time_outside_the_compared_text():
    (r,) = hostcheck.parse_results("Car: target 94.9% [12, 243] 12.034 ms\r\n")
    assert (r.label, r.confidence, r.scores, r.ms) == ("target", "94.9%", [12, 243], 12.034)
    assert r.line == "Car: target 94.9% [12, 243]" and r.text.endswith("12.034 ms") and r.error is None
    (old,) = hostcheck.parse_results("Car: target 94.9% [12, 243]\n")     # QEMU's harness prints no time
    assert old.ms is None and old.line == r.line
    (bad,) = hostcheck.parse_results("kws:yes.npy: error: TVMExecute returned -2\r\n")
    assert (bad.title, bad.error, bad.scores) == ("kws:yes.npy", "TVMExecute returned -2", None)


def test_a_failed_run_is_reported_not_compared():
    want = {"images": [{"name": "a", "title": "Car", "scores": [1, 2], "argmax": 1, "line": "Car: b 2 [1, 2]"}]}
    printed = hostcheck.parse_results("Car: error: TVMExecute returned -7\n")
    assert hostcheck.first_round("Car: error: TVMExecute returned -7\n", want) == printed
    with pytest.raises(PipelineError, match=r"model run failed on the board.*Car: TVMExecute returned -7"):
        hostcheck.compare(printed, want, who="board")
    with pytest.raises(PipelineError, match="Car: TVMExecute returned -7"):
        hostcheck.compare_lines(printed, want, "sim", "on simavr")


# ------------------------------------------------------------------------------------------ sketch output
def test_host_sketch_prints_label_confidence_and_time(tmp_path):
    out = render_standin_sketch(tmp_path, "nano33ble")
    ino = (out / "sk.ino").read_text()
    assert "!Serial && millis() - t0 < SERIAL_WAIT_MS" in ino       # USB-CDC board: waits for the host
    want = expected_json(tmp_path / "expected.json")
    summary = hostcheck.host_check(str(out), "sk", str(tmp_path / "expected.json"), str(tmp_path / "hc.json"))
    assert summary["exact"]
    printed = summary["output"].splitlines()
    assert len(printed) == len(want["images"])
    for line, exp, row in zip(printed, want["images"], summary["images"]):
        assert line.startswith(exp["line"] + " ") and line.endswith(" ms")      # e.g. "Car: target 93.8% [..] 0.001 ms"
        assert row["ms"] is not None and 0 <= row["ms"] < 1000
    assert want["images"][0]["line"] == "Car: target 94.1% [30, 241, 17]"


def test_a_failing_tvmexecute_is_an_error_line_and_no_scores(tmp_path):
    out = render_standin_sketch(tmp_path, "nano33ble")
    expected_json(tmp_path / "expected.json")
    exe = hostcheck.build_host_binary(str(out), "sk", str(tmp_path), extra_flags=["-DSTANDIN_RC=-3"])
    text = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
    assert text.splitlines() == ["Car: error: TVMExecute returned -3", "Other object: error: TVMExecute returned -3"]
    with pytest.raises(PipelineError, match="no scores for 2 input.*Car: TVMExecute returned -3"):
        hostcheck.compare(hostcheck.parse_results(text), json.loads((tmp_path / "expected.json").read_text()))


def test_serial_boards_do_not_wait_for_a_usb_host(tmp_path):
    assert boards.get("nano33ble")["usb_cdc"] and not boards.get("mega")["usb_cdc"]
    ino = (render_standin_sketch(tmp_path, "mega") / "sk.ino").read_text()
    assert "SERIAL_WAIT_MS" not in ino and "Serial.begin(115200)" in ino


@pytest.mark.heavy
def test_simavr_runs_the_sketch_and_prints_the_same_lines_with_a_time(tmp_path):
    from codegen.runners import avr

    if not avr.toolchain_available():
        pytest.skip("needs arduino-builder, the AVR core and simavr: " + ", ".join(avr.missing_tools()))
    mega = boards.get("mega")
    out = render_standin_sketch(tmp_path, "mega")
    want = expected_json(tmp_path / "expected.json")
    built = avr.compile_sketch(str(out), mega["fqbn"], str(tmp_path / "build"))
    text = avr.run_simavr(built["elf"], mega["cpu"], timeout_s=60,
                          until=lambda t: hostcheck.first_round(t, want) is not None)
    printed = hostcheck.first_round(text, want)
    hostcheck.compare_lines(printed, want, "stand-in sketch", "on simavr")
    # micros() on the simulated 16 MHz ATmega2560: three 8-bit multiply-adds take well under a millisecond.
    assert all(r.ms is not None and r.ms < 1 for r in printed), text


# ------------------------------------------------------------------------------------------ a board on a pty
class PtyBoard:
    """A pseudo-terminal standing in for a board's serial port: `path` is the port, `say()` prints lines from
    the board's side (after `delay` s, in a thread), `hang_up()` closes the board's end."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def say(self, lines, delay=0.5, pause=0.05, rounds=1):
        """Writes `lines` `rounds` times, like a sketch's loop(): a port opened late (a loaded machine) still
        hears a whole round, as pyserial drops what arrived before it opened the port."""
        def talk():
            time.sleep(delay)
            for _ in range(rounds):
                for line in lines:
                    fd = self.master
                    if fd is None:          # unplugged: the rest is never heard
                        return
                    try:
                        os.write(fd, line.encode())
                    except OSError:
                        return
                    time.sleep(pause)

        thread = threading.Thread(target=talk, daemon=True)
        thread.start()
        return thread

    def heard(self):
        os.set_blocking(self.master, False)
        try:
            return os.read(self.master, 1000)
        except BlockingIOError:
            return b""

    def unplug(self):
        """Closes the board's end: the port's reader sees the line hang up."""
        fd, self.master = self.master, None
        if fd is not None:
            os.close(fd)

    def hang_up(self):
        self.unplug()
        fd, self.slave = self.slave, None
        if fd is not None:
            os.close(fd)


@pytest.fixture
def board():
    pty = PtyBoard()
    yield pty
    pty.hang_up()


def test_monitor_echoes_the_port_when_stdin_is_not_a_terminal(board):
    out = io.StringIO()
    board.say(["boot\r\n", "Car: target 94.1% [30, 241, 17] 0.004 ms\r\n"], delay=0.5)
    assert arduino.monitor(board.path, 115200, timeout_s=1.5, stdin=io.StringIO(), stdout=out) == "timeout"
    assert out.getvalue() == "boot\nCar: target 94.1% [30, 241, 17] 0.004 ms\n"


def test_monitor_ends_when_the_port_closes(board):
    out = io.StringIO()
    talker = board.say(["last words\r\n"], delay=0.5)

    def unplug():
        talker.join()
        time.sleep(0.3)
        board.unplug()

    threading.Thread(target=unplug, daemon=True).start()
    t0 = time.monotonic()
    assert arduino.monitor(board.path, 115200, timeout_s=20, stdin=io.StringIO(), stdout=out) == "closed"
    assert time.monotonic() - t0 < 10 and out.getvalue() == "last words\n"


def test_port_errors_are_one_sentence_each(board):
    import serial

    with pytest.raises(PipelineError, match="PORT=/dev/nonexistent does not exist"):
        arduino.open_port("/dev/nonexistent", 115200)
    with pytest.raises(PipelineError, match=r"PORT=/dev/null is not a serial port \(not a tty\)"):
        arduino.open_port("/dev/null", 115200)
    first = arduino.open_port(board.path, 115200)
    try:
        with pytest.raises(PipelineError, match=f"{board.path} is busy: another program"):
            arduino.open_port(board.path, 115200)
    finally:
        first.close()
    arduino.open_port(board.path, 115200).close()          # free again once the other program closed it
    # Root opens any device, so permission denied is pyserial's exception as it raises it for a user without
    # access to the port.
    denied = serial.SerialException(errno.EACCES, f"could not open port {board.path}: [Errno 13] Permission denied")
    assert "dialout" in arduino._open_error(board.path, denied)


def _scons_monitor(port, stdin, *args):
    return subprocess.Popen([scons_exe(), "-C", ROOT, "-Q", "monitor", f"PORT={port}", *args],
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_scons_monitor_echoes_a_pty_in_a_pipe(board, tmp_path):
    board.say(["Car: target 94.1% [30, 241, 17] 0.004 ms\r\n", "Other object: random 82.4% [210, 7, 11] 0.004 ms\r\n"],
              delay=1, pause=0.1, rounds=100)
    proc = _scons_monitor(board.path, subprocess.DEVNULL, "MONITOR_TIMEOUT=3", f"BUILD_DIR={tmp_path}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Car: target 94.1% [30, 241, 17] 0.004 ms\nOther object: random 82.4% [210, 7, 11] 0.004 ms\n" in out
    assert not list(tmp_path.glob("nano33ble/*.json"))       # watching a board builds nothing


@pytest.mark.parametrize("key", ["\x1d", "\x03"], ids=["ctrl-]", "ctrl-c"])
def test_scons_monitor_is_miniterm_on_a_terminal(board, tmp_path, key):
    keyboard, terminal = os.openpty()
    try:
        proc = _scons_monitor(board.path, terminal, f"BUILD_DIR={tmp_path}", "BAUD=9600")
        board.say(["hello from the board\r\n"], delay=1, pause=0.2, rounds=100)
        deadline = time.monotonic() + 30
        while b"x" not in board.heard() and time.monotonic() < deadline:
            os.write(keyboard, b"x")       # typed keys go to the board (once miniterm runs)
            time.sleep(0.5)
        time.sleep(1)                      # a few of the board's lines reach the terminal
        os.write(keyboard, key.encode())
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(keyboard)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert "hello from the board\n" in out and f"{board.path} at 9600 baud; quit with Ctrl+] or Ctrl+C" in err
    assert "error" not in err


def test_scons_monitor_on_a_terminal_ends_when_the_board_goes_away(board, tmp_path):
    keyboard, terminal = os.openpty()
    try:
        proc = _scons_monitor(board.path, terminal, f"BUILD_DIR={tmp_path}")
        board.say(["h\u00e9llo\r\n"], delay=1, pause=0.2, rounds=100)
        deadline = time.monotonic() + 30
        while b"x" not in board.heard() and time.monotonic() < deadline:
            os.write(keyboard, b"x")       # miniterm runs once the board hears keys
            time.sleep(0.5)
        time.sleep(1)
        board.unplug()
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(keyboard)
        os.close(terminal)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "h\u00e9llo\n" in out and f"{board.path} closed (board unplugged or reset?)" in err


def test_scons_monitor_missing_port_is_one_error_line(tmp_path):
    proc = _scons_monitor("/dev/nonexistent", subprocess.DEVNULL, f"BUILD_DIR={tmp_path}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: PORT=/dev/nonexistent does not exist: is the board connected? `arduino-cli board list` shows the "
        "ports it sees"]


# ------------------------------------------------------------------------------------------ verify
def _round(want, change=None):
    """The board's printed round for expected `want`, with `change` = (input index, score index, delta)."""
    lines = []
    for i, exp in enumerate(want["images"]):
        scores = list(exp["scores"])
        if change and change[0] == i:
            scores[change[1]] += change[2]
        lines.append(hostcheck.result_line(exp["title"], scores, LABELS, OUTPUT) + " 0.004 ms\r\n")
    return lines


def test_verify_is_exact_by_default_and_names_the_difference(board, tmp_path):
    want = expected_json(tmp_path / "expected.json")
    board.say(["garbage\r\n", *_round(want, change=(1, 2, 1))], delay=0.5)
    with pytest.raises(PipelineError, match=r"Other object: score 2 is 12 on the board, TFLite 11 \(difference 1 > "
                                            r"TOLERANCE=0\)"):
        arduino.verify(board.path, str(tmp_path / "expected.json"), timeout_s=10)


def test_verify_accepts_differences_within_tolerance(board, tmp_path):
    want = expected_json(tmp_path / "expected.json")
    board.say(_round(want, change=(0, 0, -1)), delay=0.5)
    summary = arduino.verify(board.path, str(tmp_path / "expected.json"), timeout_s=10, tolerance=1)
    assert not summary["exact"] and summary["max_abs_diff"] == 1
    assert [r["ms"] for r in summary["images"]] == [0.004, 0.004]


def test_verify_reports_a_failed_run(board, tmp_path):
    expected_json(tmp_path / "expected.json")
    board.say(["Car: error: TVMExecute returned -1\r\n", "Other object: error: TVMExecute returned -1\r\n"], delay=0.5)
    with pytest.raises(PipelineError, match="model run failed on the board"):
        arduino.verify(board.path, str(tmp_path / "expected.json"), timeout_s=10)


@pytest.mark.heavy
def test_scons_verify_exits_nonzero_on_a_mismatch_and_zero_within_tolerance(tiny_build):
    """Through scons, on the tiny build's real expected.json; the host check's own output shows the lines too."""
    build, _ = tiny_build
    out = build / "nano33ble"
    want = json.loads((out / "expected.json").read_text())
    check = json.loads((out / "hostcheck.json").read_text())
    for line, exp in zip(check["output"].splitlines(), want["images"]):
        assert line.startswith(exp["line"] + " ") and line.endswith(" ms")
    labels = json.loads((out / "images.json").read_text())["labels"]
    output = json.loads((out / "images.json").read_text())["output"]
    k = 1 - want["images"][0]["argmax"]          # a score that is not the top one: the decision stays
    scores = list(want["images"][0]["scores"])
    scores[k] += 1 if scores[k] < want["images"][0]["scores"][want["images"][0]["argmax"]] - 1 else -1
    board_lines = [hostcheck.result_line(want["images"][0]["title"], scores, labels, output) + " 1.234 ms\r\n"]
    board_lines += [e["line"] + " 1.234 ms\r\n" for e in want["images"][1:]]
    for tolerance, ok in (("0", False), ("1", True)):
        pty = PtyBoard()
        try:
            pty.say(board_lines, delay=1, pause=0.2, rounds=200)
            proc = run_scons(build, "verify", check=False, PORT=pty.path, TOLERANCE=tolerance, MONITOR_TIMEOUT="30")
        finally:
            pty.hang_up()
        assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-2000:]
        if ok:
            assert f"scores within TOLERANCE=1 of TFLite's (max difference 1)" in proc.stdout
        else:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert errors and "disagrees with TFLite" in errors[0], proc.stderr
            assert f"{want['images'][0]['title']}: score {k} is {scores[k]} on the board" in proc.stderr


def test_baud_and_tolerance_are_checked_before_any_stage():
    from codegen import config
    from codegen.errors import ConfigError

    cfg = config.parse({"BAUD": "9600", "TOLERANCE": "2"})
    assert (cfg["baud"], cfg["tolerance"]) == (9600, 2)
    assert (config.parse({})["baud"], config.parse({})["tolerance"]) == (None, 0)   # the sketch's rate; exact
    with pytest.raises(ConfigError, match=r"BAUD='fast' is not a whole number; e\.g\. BAUD=9600"):
        config.parse({"BAUD": "fast"})
    with pytest.raises(ConfigError, match="TOLERANCE=-1 is too small"):
        config.parse({"TOLERANCE": "-1"})
    assert boards.serial_baud(boards.get("mega")) == 115200 == boards.serial_baud({"baud": None})
    assert boards.serial_baud({"baud": 9600}) == 9600
