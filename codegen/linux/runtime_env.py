"""The isolated venv `scons check` runs a bundle in: only what the bundle's requirements.txt installs (LiteRT,
numpy, Pillow), as on the board; no TensorFlow, no packages of the build's own venv.

One venv per requirements.txt content and Python version, built once (pip from PyPI) under a lock and kept in
a cache folder (RUNTIME_VENV=, default ~/.cache/tinyml-scons/runtime-venvs): every build dir and every test
shares it. It is made in a temporary folder and renamed when complete, so an interrupted pip never leaves a
venv that looks ready.
"""
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys

from .. import proc as external
from ..errors import PipelineError

PIP_TIMEOUT_S = 1200
# The modules the bundle imports, and the one it must not have.
REQUIRED_MODULES = ("numpy", "PIL.Image")
RUNTIME_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def default_root():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "tinyml-scons", "runtime-venvs")


def base_python():
    """The interpreter the build's venv was made from: a venv made from a venv would still be the base's."""
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_key(requirements_text):
    ident = json.dumps([requirements_text, platform.python_version(), platform.machine()])
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def clean_env():
    """The environment for the venv's Python: no PYTHONPATH/PYTHONHOME leaking the build's packages in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@contextlib.contextmanager
def _locked(path):
    from filelock import FileLock      # flock(2) on POSIX, LockFileEx on Windows

    with FileLock(path, thread_local=False):
        yield


def _tail(text, lines=6):
    kept = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return " | ".join(kept[-lines:])


def _probe(python):
    """{"runtime": module or None, "tensorflow": bool, "missing": [...]} of a venv's Python, isolated mode."""
    code = ("import importlib.util as u, json\n"
            "def has(m):\n"
            "    try:\n"
            "        return u.find_spec(m) is not None\n"
            "    except ModuleNotFoundError:\n"
            "        return False\n"
            f"print(json.dumps({{'runtime': next((m for m in {list(RUNTIME_MODULES)!r} if has(m)), None),"
            f" 'tensorflow': has('tensorflow'), 'missing': [m for m in {list(REQUIRED_MODULES)!r} if not has(m)]}}))")
    proc = external.run([python, "-I", "-c", code], capture_output=True, text=True, env=clean_env(), timeout=120)
    if proc.returncode != 0:
        raise PipelineError(f"the runtime venv's Python {python} does not start: {_tail(proc.stderr)}")
    return json.loads(proc.stdout)


def runtime_python(requirements_path, root=None, log=print):
    """The `python` of the venv for this requirements.txt, built first when missing. PipelineError when pip
    cannot install it (no network, no wheel for this Python) or the result lacks the runtime or holds TensorFlow."""
    root = root or default_root()
    with open(requirements_path) as f:
        text = f.read()
    key = venv_key(text)
    final = os.path.join(root, key)
    python = os.path.join(final, "bin", "python")
    os.makedirs(root, exist_ok=True)
    with _locked(os.path.join(root, key + ".lock")):
        if not os.path.isfile(os.path.join(final, "tinyml-venv.json")):
            _build(text, final, log)
    info = _probe(python)
    if info["runtime"] is None or info["missing"] or info["tensorflow"]:
        raise PipelineError(f"the runtime venv {final} is not what {requirements_path} asks for ({json.dumps(info)}); "
                            "delete that folder and run scons again")
    return python


def _build(requirements_text, final, log):
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)       # an incomplete one (no stamp) from an older layout
    log(f"  building the isolated runtime venv {final} (once per requirements.txt; pip from PyPI)", flush=True)
    try:
        proc = external.run([base_python(), "-m", "venv", tmp], capture_output=True, text=True, env=clean_env(),
                              timeout=300)
        if proc.returncode != 0:
            raise PipelineError(f"python -m venv {tmp} failed: {_tail(proc.stderr)}; install python3-venv")
        req = os.path.join(tmp, "requirements.txt")
        with open(req, "w") as f:
            f.write(requirements_text)
        py = os.path.join(tmp, "bin", "python")
        try:
            proc = external.run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", req],
                                  capture_output=True, text=True, env=clean_env(), timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise PipelineError(f"pip did not finish installing the runtime in {PIP_TIMEOUT_S} s; check the "
                                "network access to PyPI and run scons again") from None
        if proc.returncode != 0:
            raise PipelineError(f"pip could not install the bundle's requirements.txt into the runtime venv: "
                                f"{_tail(proc.stderr or proc.stdout)}; check the network access to PyPI (or give "
                                "RUNTIME_VENV= a folder where it was built) and run scons again")
        freeze = external.run([py, "-m", "pip", "freeze", "--disable-pip-version-check"], capture_output=True,
                                text=True, env=clean_env(), timeout=120).stdout.split()
        with open(os.path.join(tmp, "tinyml-venv.json"), "w") as f:
            json.dump({"requirements": requirements_text, "python": platform.python_version(),
                       "packages": freeze}, f, indent=1)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def installed_packages(python):
    stamp = os.path.join(os.path.dirname(os.path.dirname(python)), "tinyml-venv.json")
    with open(stamp) as f:
        return json.load(f)["packages"]


def run_bundle(python, bundle_dir, args, timeout_s=600):
    """Runs `python -I run.py --json ARGS` in the bundle folder; returns its JSON. PipelineError with run.py's
    error line when it fails."""
    cmd = [python, "-I", os.path.join(os.path.abspath(bundle_dir), "run.py"), "--json", *args]
    try:
        proc = external.run(cmd, capture_output=True, text=True, cwd=bundle_dir, env=clean_env(),
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PipelineError(f"run.py did not finish in {timeout_s} s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise PipelineError(f"the bundle's run.py failed in the runtime venv: {_tail(proc.stderr, 3)}")
    return json.loads(proc.stdout)
