"""arduino-cli: compile, port detection, upload (skipped when the same binary is already on the port) and a
serial monitor that checks the sketch's printed scores.

Flags are passed identically every time and the build path is fixed per board, so arduino-cli's own cache
stays valid between runs.
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time

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
    import signal

    proc = external.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException as e:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
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


def compile_sketch(cli, sketch_dir, board, build_path, output_dir, result_json, extra_flags=()):
    cli = find_cli(cli, sketch_dir)
    core = board["core"]
    if core not in installed_cores(cli):
        raise PipelineError(f"the Arduino core {core} for {board['title']} is not installed: run "
                            f"`{cli} core install {core}`, then build again")
    cmd = [cli, "compile", "--fqbn", board["fqbn"], "--build-path", os.path.abspath(build_path),
           "--output-dir", os.path.abspath(output_dir), "--format", "json", *extra_flags, os.path.abspath(sketch_dir)]
    result = _run_json(cmd, f"arduino-cli compile of {sketch_dir}")
    sections = {s.get("name"): s for s in (result.get("builder_result") or {}).get("executable_sections_size") or []}
    binaries = _binaries(output_dir)
    if not binaries:
        raise PipelineError(f"arduino-cli compile of {sketch_dir} reported success but wrote no firmware (.bin, "
                            f".hex, .elf, .uf2) into {output_dir}; check its --output-dir support and run again")
    with atomic_open(result_json) as f:
        json.dump({"command": cmd, "firmware_sha256": firmware_hash(output_dir),
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


def _fqbn_base(fqbn):
    return ":".join((fqbn or "").split(":")[:3])


def select_port(board_list, board):
    """The one port that matches the board by fqbn or USB vid/pid; a clear error for none or several."""
    ports = _ports(board_list)
    usb = {(v.lower(), p.lower()) for v, p in board.get("usb_ids", [])}
    found = [p for p in ports if _fqbn_base(board["fqbn"]) in map(_fqbn_base, p["fqbns"])
             or (p["vid"], p["pid"]) in usb]
    seen = "; ".join(f"{p['address']} (vid {p['vid'] or '?'} pid {p['pid'] or '?'}"
                     f"{', ' + ', '.join(filter(None, p['fqbns'])) if any(p['fqbns']) else ''})" for p in ports)
    if not found:
        raise PipelineError(f"no {board['title']} found on any port (seen: {seen or 'no ports'}); connect it "
                            "(double-tap reset for the bootloader) or pass PORT=")
    if len(found) > 1:
        raise PipelineError(f"several {board['title']} boards found: "
                            f"{', '.join(p['address'] for p in found)}; pick one with PORT=")
    return found[0]["address"]


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
def upload(cli, board, port, input_dir, sketch_dir, record_json, compile_json, force=False):
    """Uploads unless the same binary was last uploaded to the same port for the same board.

    The record is removed before uploading and written only after success: a failed or interrupted upload
    leaves no claim about what is on the board, so the next run uploads again.
    Returns (port, uploaded: bool).
    """
    cli = find_cli(cli, sketch_dir)
    port = check_port(port) if port else detect_port(cli, board)
    with open(compile_json) as f:
        binary = json.load(f)["firmware_sha256"]
    record = {"port": port, "fqbn": board["fqbn"], "firmware_sha256": binary}
    try:
        with open(record_json) as f:
            previous = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        previous = None
    if previous and {k: previous.get(k) for k in record} == record and not force:
        return port, False
    if os.path.exists(record_json):
        os.remove(record_json)
    cmd = [cli, "upload", "--fqbn", board["fqbn"], "--port", port, "--input-dir", os.path.abspath(input_dir),
           "--format", "json", os.path.abspath(sketch_dir)]
    _run_json(cmd, f"arduino-cli upload to {port}")
    with atomic_open(record_json) as f:
        json.dump(dict(record, time=time.strftime("%Y-%m-%dT%H:%M:%S")), f, indent=1)
    return port, True


# ------------------------------------------------------------------------------------------------ monitor
def monitor(port, expected_json, *, baud=115200, timeout_s=30, serial_factory=None):
    """Reads the sketch's output from the serial port until every embedded image's result arrived, and checks
    the scores against TFLite's. Returns the comparison summary."""
    from ..runners.hostcheck import compare, first_round

    if serial_factory is None:
        import serial

        serial_factory = serial.Serial
    with open(expected_json) as f:
        expected = json.load(f)
    check_port(port)
    try:
        conn = serial_factory(port, baud, timeout=0.5)
    except Exception as e:  # noqa: BLE001 - pyserial raises SerialException/OSError variants
        raise PipelineError(f"cannot open {port}: {e}; is another program (a serial monitor) using it?") from None
    text = ""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            text += conn.readline().decode("utf-8", "replace")
            # The sketch prints its results every loop: take one round from the first input on.
            printed = first_round(text, expected)
            if printed is not None:
                return compare(printed, expected, who="board")
    finally:
        conn.close()
    raise PipelineError(f"no complete results from {port} within {timeout_s} s (read {len(text)} characters: "
                        f"{text[-200:]!r}); check the baud rate ({baud}) and that the board runs the sketch")
