import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Small enough to train in seconds, big enough for every stage to do real work.
TINY = {"SIZE": "32", "SAMPLES": "16", "EPOCHS": "1", "REP_SAMPLES": "8", "BATCH": "8"}


def pytest_collection_modifyitems(config, items):
    """The registry coverage check reads what the op tests recorded: it runs after them."""
    items.sort(key=lambda item: item.get_closest_marker("registry_coverage") is not None)


def scons_exe():
    return os.path.join(os.path.dirname(sys.executable), "scons")


def run_scons(build_dir, *targets, check=True, env=None, **variables):
    args = {**TINY, "BUILD_DIR": str(build_dir), **variables}
    cmd = [scons_exe(), "-C", ROOT, *[f"{k}={v}" for k, v in args.items()], *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"scons failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def built_stages(output):
    """The stage messages (COMSTR lines) a scons run printed, i.e. what it rebuilt."""
    prefixes = ("Generating synthetic", "Packing dataset", "Training", "Quantizing", "Evaluating", "Embedding",
                "TFLite reference", "TVM codegen", "Rendering sketch", "Host check", "arduino-cli")
    return [line.split(" ->")[0] for line in output.splitlines() if line.startswith(prefixes)]


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """One full default-target build of the tiny configuration, shared by the tests that only read it."""
    build = tmp_path_factory.mktemp("tiny_build")
    proc = run_scons(build)
    return build, proc
