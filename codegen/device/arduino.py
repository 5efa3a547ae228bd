"""arduino-cli: compile, port detection, upload (skipped only when the board on the port reports this build's id);
the serial monitor (pyserial's miniterm) and `verify`, which checks the sketch's printed scores against TFLite's.

The build id: a binary cannot contain its own hash, so the id is a hash of what the firmware is built from (the
sketch's files, the board's fqbn and the compile flags), written into the compiled copy of the sketch as
tinyml_build_id.h. The sketch prints it (`build id: ...`) at start-up and before every round of results;
`upload` reads it from the port and skips the upload only when it is this build's. The rendered sketch itself
stays free of it, so the host check does not depend on compile flags.

Flags are passed identically every time and the build path is fixed per board, so arduino-cli's own cache
stays valid between runs.
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

from .. import interrupt, protocol
from .. import proc as external
from ..errors import PipelineError
from ..fsutil import atomic_open

INSTALL_HINT = ("install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/, e.g. "
                "`curl -fsSL https://raw.githubusercontent.com/arduino/arduino-cli/master/install.sh | sh`), "
                "put it on PATH or pass ARDUINO_CLI=/path/to/arduino-cli")


def find_cli(cli, sketch_dir=None):
    path = shutil.which(cli)
    if path is None:
        where = f"; the generated sketch is ready at {sketch_dir} (open it in the Arduino IDE)" if sketch_dir else ""
        raise PipelineError(f"arduino-cli not found ({cli!r}): {INSTALL_HINT}{where}")
    return path


DEFAULT_TIMEOUT_S = 1800


def cli_timeout():
    """Seconds an arduino-cli call may take: $ARDUINO_CLI_TIMEOUT, else 30 minutes (a first compile of the
    mbed core is slow). Not a build variable: it does not change what is built."""
    raw = os.environ.get("ARDUINO_CLI_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise PipelineError(f"ARDUINO_CLI_TIMEOUT={raw!r} is not a positive number of seconds")
    return value


def _run(cmd, what, timeout_s):
    """Runs arduino-cli in its own process group; on a timeout, Ctrl-C or SIGTERM (raised here as
    KeyboardInterrupt by the SCons glue) the whole group is killed: a hung arduino-cli ignores SIGTERM."""
    proc = external.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                          start_new_session=True)
    try:
        with interrupt.child(proc, own_group=True):     # -j2: a signal in the main thread kills the group
            out, err = proc.communicate(timeout=timeout_s)
    except BaseException as e:
        interrupt.kill_tree(proc.pid, own_group=True)
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise PipelineError(f"{what} did not finish in {timeout_s:g} s and was stopped; raise "
                                "ARDUINO_CLI_TIMEOUT=<seconds> if it is just slow") from None
        raise
    return proc.returncode, out, err


def _run_json(cmd, what, expect=dict):
    """arduino-cli's `--format json` answer, checked: exit status, JSON, and the shape the caller reads."""
    returncode, out, err = _run(cmd, what, cli_timeout())
    try:
        data = json.loads(out) if out.strip() else None
        parsed = True
    except json.JSONDecodeError:
        data, parsed = None, False
    if returncode != 0:
        detail = (data.get("error") if isinstance(data, dict) else None) or err.strip() or out.strip()
        raise PipelineError(f"{what} failed (arduino-cli exit {returncode}):\n{detail}")
    if not parsed or data is None:
        shown = (out.strip() or err.strip() or "nothing").splitlines()[0][:200]
        raise PipelineError(f"{what}: arduino-cli exited 0 but did not answer in JSON (it printed: {shown}); "
                            f"check that {cmd[0]} is arduino-cli 0.30 or newer (`{cmd[0]} version`)")
    if expect is not None and not isinstance(data, expect if isinstance(expect, tuple) else (expect,)):
        raise PipelineError(f"{what}: arduino-cli answered JSON of an unexpected shape ({type(data).__name__}: "
                            f"{json.dumps(data)[:200]}); check that {cmd[0]} is arduino-cli 0.30 or newer")
    return data


def installed_cores(cli):
    data = _run_json([cli, "core", "list", "--format", "json"], "arduino-cli core list", expect=(dict, list))
    platforms = data.get("platforms", []) if isinstance(data, dict) else data
    if not isinstance(platforms, list) or not all(isinstance(p, dict) and "id" in p for p in platforms):
        raise PipelineError(f"arduino-cli core list: unexpected JSON ({json.dumps(data)[:200]}); expected a list "
                            "of platforms with an id; check that it is arduino-cli 0.30 or newer")
    return {p["id"] for p in platforms}


BUILD_ID_HEADER = "tinyml_build_id.h"     # beside the .ino (an Arduino library export rewrites "src/" includes)
BUILD_ID_LINE = protocol.BUILD_ID_LINE   # what the sketch prints (templates/protocol/results.j2)


def build_id(sketch_dir, fqbn, flags):
    """16 hex digits of sha256 over the sketch's files (relative names and bytes), the fqbn and the flags."""
    h = hashlib.sha256()
    for rel in _sketch_files(sketch_dir):
        if rel == BUILD_ID_HEADER:
            continue
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        with open(os.path.join(sketch_dir, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    h.update(json.dumps({"fqbn": fqbn, "flags": list(flags)}).encode())
    return h.hexdigest()[:16]


def _sketch_files(folder):
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [os.path.relpath(os.path.join(dirpath, f), folder) for f in sorted(filenames)]
    return found


def _same_bytes(a, b):
    import filecmp

    return os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)


def stage_for_compile(sketch_dir, staged_dir, ident):
    """The copy of the sketch arduino-cli compiles: the rendered files (copied only when changed, so that
    arduino-cli's own cache sees unchanged mtimes) plus tinyml_build_id.h; files no longer rendered go."""
    wanted = set(_sketch_files(sketch_dir))
    for rel in sorted(wanted):
        src, dst = os.path.join(sketch_dir, rel), os.path.join(staged_dir, rel)
        if not _same_bytes(src, dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    for rel in _sketch_files(staged_dir) if os.path.isdir(staged_dir) else []:
        if rel not in wanted and rel != BUILD_ID_HEADER:
            os.remove(os.path.join(staged_dir, rel))
    header = os.path.join(staged_dir, BUILD_ID_HEADER)
    from ..emit import templating

    text = templating.render("device/tinyml_build_id.h.j2", ident=ident)
    if not (os.path.isfile(header) and _read_text(header) == text):
        os.makedirs(os.path.dirname(header), exist_ok=True)
        with atomic_open(header) as f:
            f.write(text)


def _read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def compile_sketch(cli, sketch_dir, board, build_path, output_dir, result_json, extra_flags=(), staged_dir=None):
    """arduino-cli compile of the sketch; with `staged_dir`, of a copy there that carries the build id."""
    cli = find_cli(cli, sketch_dir)
    core = board["core"]
    if core not in installed_cores(cli):
        raise PipelineError(f"the Arduino core {core} for {board['title']} is not installed: run "
                            f"`{cli} core install {core}`, then build again")
    ident = build_id(sketch_dir, board["fqbn"], extra_flags)
    compiled_dir = sketch_dir
    if staged_dir:
        stage_for_compile(sketch_dir, staged_dir, ident)
        compiled_dir = staged_dir
    cmd = [cli, "compile", "--fqbn", board["fqbn"], "--build-path", os.path.abspath(build_path),
           "--output-dir", os.path.abspath(output_dir), "--format", "json", *extra_flags,
           os.path.abspath(compiled_dir)]
    result = _run_json(cmd, f"arduino-cli compile of {sketch_dir}")
    sections = {s.get("name"): s for s in (result.get("builder_result") or {}).get("executable_sections_size") or []}
    binaries = _binaries(output_dir)
    if not binaries:
        raise PipelineError(f"arduino-cli compile of {sketch_dir} reported success but wrote no firmware (.bin, "
                            f".hex, .elf, .uf2) into {output_dir}; check its --output-dir support and run again")
    with atomic_open(result_json) as f:
        json.dump({"command": cmd, "firmware_sha256": firmware_hash(output_dir),
                   "build_id": ident if staged_dir else None, "compiled_sketch": os.path.abspath(compiled_dir),
                   "sections": sections, "result": result}, f, indent=1)
    return result


def compiler_diagnostics(result):
    """What the compiler said during a successful `arduino-cli compile --format json` (warnings, notes): the
    JSON answer carries gcc's stderr as `compiler_err`. Shown on every compile, as the Arduino IDE does."""
    text = result.get("compiler_err") if isinstance(result, dict) else None
    return text.rstrip() if isinstance(text, str) else ""


def _binaries(output_dir):
    names = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
    return [n for n in names if n.endswith((".bin", ".hex", ".elf", ".uf2"))
            and os.path.getsize(os.path.join(output_dir, n)) > 0]


def firmware_hash(output_dir):
    """One hash over the binaries arduino-cli wrote (what an upload would put on the board)."""
    h = hashlib.sha256()
    for name in _binaries(output_dir):
        h.update(name.encode())
        with open(os.path.join(output_dir, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ ports
def _ports(board_list):
    """Normalises `board list --format json` of arduino-cli 0.x (a list) and 1.x ({"detected_ports": [...]})."""
    entries = board_list.get("detected_ports", []) if isinstance(board_list, dict) else board_list or []
    ports = []
    for e in entries:
        port = e.get("port", e)
        props = port.get("properties") or {}
        ports.append({"address": port.get("address"), "protocol": port.get("protocol", "serial"),
                      "vid": (props.get("vid") or "").lower(), "pid": (props.get("pid") or "").lower(),
                      "fqbns": [b.get("fqbn") for b in e.get("matching_boards") or e.get("boards") or []]})
    return ports


def select_port(board_list, board):
    """The one port of arduino-cli's `board list` that matches the board by fqbn or USB vid/pid (ports.choose)."""
    from . import ports

    return ports.choose(_ports(board_list), board)


def check_port(port):
    """PORT= must be a device (or a name arduino-cli resolves, e.g. COM3 or a network address): a regular file
    or a folder is a typo, not "another program is using it"."""
    import stat

    if not port.startswith("/"):
        return port
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        raise PipelineError(f"PORT={port} does not exist: is the board connected? `arduino-cli board list` shows "
                            "the ports it sees") from None
    if not stat.S_ISCHR(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a device"
        raise PipelineError(f"PORT={port} is {kind}, not a serial port; pass the board's device (e.g. /dev/ttyACM0; "
                            "`arduino-cli board list` shows them)")
    return port


def detect_port(cli, board):
    return select_port(_run_json([cli, "board", "list", "--format", "json"], "arduino-cli board list", expect=(dict, list)), board)


# ------------------------------------------------------------------------------------------------ upload
PROBE_TIMEOUT_S = 5.0


def board_build_id(port, baud, *, timeout_s=PROBE_TIMEOUT_S, serial_factory=None):
    """(the build id the board on `port` prints, None) or (None, why it could not be read). Opening the port
    resets most boards, which then print it at start-up; the sketch also prints it before every round."""
    try:
        conn = open_port(port, baud, timeout_s=0.2, serial_factory=serial_factory)
    except PipelineError as e:
        return None, str(e)
    text = ""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                data = conn.readline()
            except Exception as e:  # noqa: BLE001 - pyserial raises SerialException/OSError variants
                if _port_closed(e):
                    return None, f"{port} closed while reading it ({e})"
                raise
            text += data.decode("utf-8", "replace")
            m = BUILD_ID_LINE.search(text)
            if m:
                return m.group(1), None
    finally:
        conn.close()
    return None, (f"the board on {port} printed no build id in {timeout_s:g} s at {baud} baud (it runs another "
                  "program, or one built before build ids)")


def upload(cli, board, port, input_dir, sketch_dir, compile_json, force=False, *, baud=115200,
           probe_timeout_s=PROBE_TIMEOUT_S, serial_factory=None):
    """Uploads unless the board on the port reports this build's id (FORCE=1: always).

    Nothing local is trusted: the board is asked (a board reflashed from the IDE in between reports another id,
    or none). Returns (port, uploaded: bool, why: one sentence on what was decided and why)."""
    cli = find_cli(cli, sketch_dir)
    port = check_port(port) if port else detect_port(cli, board)
    with open(compile_json) as f:
        compiled = json.load(f)
    ident = compiled.get("build_id")
    if force:
        why = "FORCE=1: uploading without asking the board"
    elif not ident:
        why = "this firmware carries no build id (compiled by an older tinyml-scons): uploading"
    else:
        found, problem = board_build_id(port, baud, timeout_s=probe_timeout_s, serial_factory=serial_factory)
        if found == ident:
            return port, False, (f"{board['title']} on {port} reports build id {ident}, this build's: upload "
                                 "skipped (FORCE=1 uploads anyway)")
        if found:
            why = f"the board on {port} runs build {found}, this is build {ident}: uploading"
        elif problem.startswith("the board on"):
            why = f"{problem}: uploading build {ident}"
        else:
            why = f"cannot read the board's build id ({problem}): uploading build {ident} to be sure"
    cmd = [cli, "upload", "--fqbn", board["fqbn"], "--port", port, "--input-dir", os.path.abspath(input_dir),
           "--format", "json", compiled.get("compiled_sketch") or os.path.abspath(sketch_dir)]
    _run_json(cmd, f"arduino-cli upload to {port}")
    return port, True, why


# ------------------------------------------------------------------------------------------------ serial port
def _open_error(port, e):
    """One sentence for why pyserial could not open `port`, with what to do about it."""
    import errno

    code = getattr(e, "errno", None)
    text = str(e)
    if code in (errno.EACCES, errno.EPERM):
        return (f"cannot open {port}: permission denied; add yourself to the group that owns it (usually dialout: "
                "`sudo usermod -aG dialout $USER`, then log out and in again)")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
        return (f"{port} is busy: another program (a serial monitor, the Arduino IDE, `arduino-cli monitor`, "
                "another `scons monitor`) has it open; close that and run again")
    if code == errno.ENOENT:
        return f"PORT={port} does not exist: is the board connected? `arduino-cli board list` shows the ports it sees"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return (f"PORT={port} is not a serial port (not a tty); pass the board's device (e.g. /dev/ttyACM0; "
                "`arduino-cli board list` shows them)")
    return f"cannot open {port}: {text}; is another program (a serial monitor) using it?"


def open_port(port, baud, *, timeout_s=0.5, serial_factory=None):
    """The board's port opened with pyserial, exclusively (a second monitor gets "busy", not half the bytes)."""
    import serial

    check_port(port)
    try:
        if serial_factory is not None:
            return serial_factory(port, baud, timeout=timeout_s)
        return serial.Serial(port, baud, timeout=timeout_s, exclusive=True)
    except (serial.SerialException, OSError) as e:
        raise PipelineError(_open_error(port, e)) from None


def _port_closed(e):
    """True for pyserial's way of saying the other end went away (a pty closed, a board unplugged or reset)."""
    import serial

    return isinstance(e, (serial.SerialException, OSError))


# ------------------------------------------------------------------------------------------------ monitor
EXIT_KEYS = "Ctrl+] or Ctrl+C"


def monitor(port, baud, *, timeout_s=30, stdin=None, stdout=None):
    """`scons monitor`: the board's serial output on the terminal, and the keyboard to the board.

    On a terminal this is pyserial's miniterm (its exit key Ctrl+], and Ctrl+C, end it). When stdin is not a
    terminal (a pipe, a test, CI) there is no keyboard to forward: the port's lines are echoed to stdout until the
    port closes, `timeout_s` passes or Ctrl-C. Returns "exit key", "closed", "timeout" or "interrupted"."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    conn = open_port(port, baud, timeout_s=0.2)
    try:
        if _is_terminal(stdin):
            return _miniterm(conn, port, baud)
        return _echo(conn, stdout, timeout_s)
    finally:
        conn.close()


def _is_terminal(stream):
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def _echo(conn, stdout, timeout_s):
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("replace")    # a character may straddle two reads
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = conn.readline()
        except KeyboardInterrupt:       # Ctrl-C ends watching; nothing was being built
            return "interrupted"
        except Exception as e:  # noqa: BLE001 - pyserial raises SerialException/OSError variants
            if _port_closed(e):
                return "closed"
            raise
        if data:
            stdout.write(decoder.decode(data).replace("\r\n", "\n"))
            stdout.flush()
    return "timeout"


def _miniterm(conn, port, baud):
    """pyserial's miniterm on an open port; Ctrl+C ends it like its exit key (miniterm puts the terminal in raw
    mode, so Ctrl+C arrives as a key, which miniterm would otherwise send to the board)."""
    import serial
    from serial.tools import miniterm

    class Monitor(miniterm.Miniterm):
        lost = False

        def reader(self):
            try:
                super().reader()
            except (serial.SerialException, OSError):
                # The board went away (miniterm's reader re-raises this in its thread, a traceback): say so
                # now; miniterm has already woken its key reader, or the next key ends it.
                self.lost = True
                sys.stderr.write(f"\n--- {port} closed (board unplugged or reset?) ---\n")
                sys.stderr.flush()

    with contextlib.redirect_stdout(sys.__stdout__):    # the real terminal, not a stage's filtered stream
        term = Monitor(conn, echo=False, eol="crlf")
    term.set_rx_encoding("utf-8")
    term.set_tx_encoding("utf-8")
    getkey = term.console.getkey

    def getkey_ctrl_c_exits():
        key = getkey()
        return term.exit_character if key == "\x03" else key

    term.console.getkey = getkey_ctrl_c_exits
    sys.stderr.write(f"--- {port} at {baud} baud; quit with {EXIT_KEYS} ---\n")
    sys.stderr.flush()
    term.start()
    try:
        term.join(True)
    except KeyboardInterrupt:           # a SIGINT from outside the terminal
        term.stop()
    finally:
        term.console.cleanup()
    term.join()
    if not term.lost:
        sys.stderr.write("\n--- exit ---\n")
    return "closed" if term.lost else "exit key"


# ------------------------------------------------------------------------------------------------ verify
def verify(port, expected_json, *, baud=115200, timeout_s=30, tolerance=0, serial_factory=None):
    """`scons verify`: reads the sketch's output from the serial port until every embedded input's result
    arrived, and checks the scores against TFLite's: each within `tolerance` (0: exactly), the same decisions.
    Returns the comparison summary; PipelineError (naming the input and score) on a mismatch."""
    from ..runners.hostcheck import compare, first_round

    with open(expected_json) as f:
        expected = json.load(f)
    conn = open_port(port, baud, serial_factory=serial_factory)
    text = ""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            text += conn.readline().decode("utf-8", "replace")
            # The sketch prints its results every loop: take one round from the first input on.
            printed = first_round(text, expected)
            if printed is not None:
                return compare(printed, expected, who="board", tolerance=tolerance)
    finally:
        conn.close()
    raise PipelineError(f"no complete results from {port} within {timeout_s} s (read {len(text)} characters: "
                        f"{text[-200:]!r}); check the baud rate ({baud}, BAUD=) and that the board runs the sketch")
