"""What the tests share that is not a fixture (fixtures are in conftest.py): the project root, the tiny
configuration, running scons and reading its stage lines, a command run as another user, the sketch stage's
fake inputs, a pty standing in for a board. Test files import these from here, never from conftest."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Small enough to train in seconds, big enough for every stage to do real work.
TINY = {"SIZE": "32", "SAMPLES": "16", "EPOCHS": "1", "REP_SAMPLES": "8", "BATCH": "8"}


def scons_exe():
    return os.path.join(os.path.dirname(sys.executable), "scons")


# The test session's build cache (CACHE_DIR=), one folder for every xdist worker (conftest.py makes it): a stage
# some earlier test built from the same inputs is copied instead of rebuilt (training, TVM codegen).
SESSION_CACHE_ENV = "TINYML_TEST_CACHE_DIR"


def run_scons(build_dir, *targets, check=True, env=None, cache=False, **variables):
    """scons on the tiny configuration. cache=True takes stages from the session's build cache (and adds to it):
    only for a run whose outputs a test needs, never for one whose stage lines, timing or rebuilds it checks
    (a stage taken from the cache prints `Retrieved ... from cache`, not its message)."""
    if cache and os.environ.get(SESSION_CACHE_ENV):
        variables.setdefault("CACHE_DIR", os.environ[SESSION_CACHE_ENV])
    args = {**TINY, "BUILD_DIR": str(build_dir), **variables}
    cmd = [scons_exe(), "-C", ROOT, *[f"{k}={v}" for k, v in args.items()], *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"scons failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


STAGE_COUNTER = re.compile(r"^\[(\d+)/(\d+)\] ")


def stage_lines(output):
    """The stage lines a scons run printed, without their `[i/N] ` counter."""
    return [STAGE_COUNTER.sub("", line) for line in output.splitlines()]


def built_stages(output):
    """The stage messages (COMSTR lines) a scons run printed, i.e. what it rebuilt."""
    prefixes = ("Generating synthetic", "Packing dataset", "Training", "Quantizing", "Evaluating", "Embedding",
                "TFLite reference", "TVM codegen", "Rendering sketch", "Host check", "arduino-cli")
    return [line.split(" ->")[0] for line in stage_lines(output) if line.startswith(prefixes)]


def _unsearchable_ancestor(path):
    """The outermost folder above `path` that other users cannot enter (e.g. /root holding pyenv's Python)."""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(2, len(parts)):
        folder = os.sep.join(parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def as_user_command(uid, gid, cmd, umask=0o022):
    """`cmd` run as another uid/gid (setpriv), with the given umask, for tests of files shared between users.

    The venv's Python may live where only root can enter (pyenv under /root): then the command runs in a
    private mount namespace where that folder is a world-searchable tmpfs with just Python's tree bound into
    it; nothing changes outside the namespace. Skips the test when this machine cannot do it."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"):
        pytest.skip("needs root with setpriv and unshare to run scons as a second user")
    inner = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", "sh", "-c",
             f'umask {umask:03o}; exec "$@"', "sh", *cmd]
    hidden = _unsearchable_ancestor(sys.base_prefix)
    if hidden is None:
        return inner
    tree = os.path.realpath(sys.base_prefix)
    script = ('set -e; t=$(mktemp -d); mount --bind "$1" "$t"; mount -t tmpfs -o mode=755 tmpfs "$2"; '
              'mkdir -p "$1"; mount --move "$t" "$1"; rmdir "$t"; shift 2; exec "$@"')
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", tree, hidden, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make {hidden} searchable in a mount namespace: {probe.stderr.decode()[-200:]}")
    return ["unshare", "-m", "sh", "-c", script, "sh", tree, hidden, *inner]


def write_fake_sketch_inputs(tmp_path, labels=("random", "target")):
    """fake_sketch_inputs in `tmp_path`, with these class labels (e.g. ones that need C escaping)."""
    import io
    import json
    import tarfile

    from codegen.emit import sketch

    meta = {"inputs": [{"name": "image", "shape": [1, 8, 8, 3], "dtype": "uint8", "size_bytes": 192}],
            "outputs": [{"name": "scores", "shape": [1, 2], "dtype": "uint8", "size_bytes": 2}],
            "workspace_size_bytes": 64}
    with tarfile.open(tmp_path / "m.tar", "w") as tar:
        files = {"metadata.json": json.dumps(meta).encode()}
        for f in sketch.model_files():
            files[f"codegen/host/{'include' if f.endswith('.h') else 'src'}/{f}"] = f"/* {f} */\n".encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "images.c").write_text("/* c */\n")
    (tmp_path / "images.h").write_text("/* h */\n")
    output = {"dtype": "uint8", "shape": [1, 2], "size": 2, "scale": 1 / 256, "zero_point": 0, "softmax": True,
              "confidence_multiplier": 4096000, "confidence_shift": 20}
    (tmp_path / "images.json").write_text(json.dumps({"progmem": False, "labels": list(labels),
                                                      "output": output, "images": [
        {"name": "image_target", "title": "Car", "label": "target", "data": ""}]}))
    return [str(tmp_path / n) for n in ("m.tar", "images.c", "images.h", "images.json")]


class FakeBoard:
    """A pty standing in for a board running the sketch: prints `build id: <runs>` every 0.1 s (runs None: a
    result line instead, i.e. a program that reports no build id). `port` is its device path."""

    def __init__(self, runs=None):
        import threading
        import time

        self.runs = runs
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.stop = False

        def talk():
            while not self.stop:
                line = f"build id: {self.runs}\r\n" if self.runs else "Car: target 98.4% [3, 252]\r\n"
                try:
                    os.write(self.master, line.encode())
                except OSError:
                    return
                time.sleep(0.1)

        threading.Thread(target=talk, daemon=True).start()

    def close(self):
        self.stop = True
        for fd in (self.master, self.slave):
            os.close(fd)
