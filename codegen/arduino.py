"""arduino-cli: compile and upload the generated sketch.

Flags are passed identically every time, and the build path is fixed per board, so arduino-cli's own cache
stays valid between runs.
"""
import json
import os
import shutil
import subprocess

from .errors import PipelineError
from .fsutil import atomic_open

INSTALL_HINT = ("install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/, e.g. "
                "`curl -fsSL https://raw.githubusercontent.com/arduino/arduino-cli/master/install.sh | sh`), "
                "put it on PATH or pass ARDUINO_CLI=/path/to/arduino-cli")


def find_cli(cli, sketch_dir=None):
    path = shutil.which(cli)
    if path is None:
        where = f"; the generated sketch is ready at {sketch_dir} (open it in the Arduino IDE)" if sketch_dir else ""
        raise PipelineError(f"arduino-cli not found ({cli!r}): {INSTALL_HINT}{where}")
    return path


def _run_json(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    if proc.returncode != 0:
        detail = (data.get("error") if isinstance(data, dict) else None) or proc.stderr.strip() or proc.stdout.strip()
        raise PipelineError(f"{what} failed (arduino-cli exit {proc.returncode}):\n{detail}")
    return data


def installed_cores(cli):
    data = _run_json([cli, "core", "list", "--format", "json"], "arduino-cli core list")
    platforms = data.get("platforms", data) if isinstance(data, dict) else data
    return {p.get("id") for p in platforms or [] if isinstance(p, dict)}


def compile_sketch(cli, sketch_dir, board, build_path, output_dir, result_json, extra_flags=()):
    cli = find_cli(cli, sketch_dir)
    core = board["core"]
    if core not in installed_cores(cli):
        raise PipelineError(f"the Arduino core {core} for {board['title']} is not installed: run "
                            f"`{cli} core install {core}`, then build again")
    cmd = [cli, "compile", "--fqbn", board["fqbn"], "--build-path", os.path.abspath(build_path),
           "--output-dir", os.path.abspath(output_dir), "--format", "json", *extra_flags, os.path.abspath(sketch_dir)]
    result = _run_json(cmd, f"arduino-cli compile of {sketch_dir}")
    with atomic_open(result_json) as f:
        json.dump({"command": cmd, "result": result}, f, indent=1)
    return result


def upload(cli, board, port, input_dir, sketch_dir):
    cli = find_cli(cli, sketch_dir)
    if not port:
        raise PipelineError(f"no serial port for {board['title']}: pass PORT=/dev/ttyACM0 (see "
                            f"`{cli} board list`)")
    cmd = [cli, "upload", "--fqbn", board["fqbn"], "--port", port, "--input-dir", os.path.abspath(input_dir),
           "--format", "json", os.path.abspath(sketch_dir)]
    return _run_json(cmd, f"arduino-cli upload to {port}")
