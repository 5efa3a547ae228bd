"""The tests' pytest hooks and fixtures; plain helpers (ROOT, run_scons, FakeBoard, ...) are in helpers.py."""
import os
import re

import pytest

from helpers import ROOT, run_scons, write_fake_sketch_inputs


# Every registered op must have a case that an op test found bit-exact. The op tests run on several xdist
# workers (pytest.ini), so each records the op types it proved in one file of this run (tflite_helpers.check_exact),
# and the check runs once all tests are done, in the process that ran the session.
_OP_TEST_MODULE = re.compile(r"(^|/)test_(ops\w*|mlf)\.py$")
_op_modules_passed = set()


def _is_xdist_worker(config):
    return hasattr(config, "workerinput")


def pytest_configure(config):
    if not _is_xdist_worker(config) and "TINYML_EXACT_OPS_FILE" not in os.environ:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="tinyml-exact-ops-", suffix=".txt")
        os.close(fd)
        os.environ["TINYML_EXACT_OPS_FILE"] = path          # workers start later and inherit it
        config._tinyml_exact_ops_file = path


def pytest_runtest_logreport(report):
    module = report.nodeid.split("::", 1)[0]
    if report.when == "call" and report.passed and _OP_TEST_MODULE.search(module):
        _op_modules_passed.add(os.path.basename(module)[:-3])


def pytest_sessionfinish(session, exitstatus):
    path = getattr(session.config, "_tinyml_exact_ops_file", None)
    if not path:
        return
    try:
        with open(path) as f:
            proved = {line.strip() for line in f if line.strip()}
    finally:
        os.environ.pop("TINYML_EXACT_OPS_FILE", None)
        os.remove(path)
    op_modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "tests")) if _OP_TEST_MODULE.search(f)}
    if not op_modules <= _op_modules_passed:
        return                      # not a run of every op test (a subset, -m "not heavy", -k ...): nothing to say
    from codegen.lowering.registry import registry

    missing = sorted(set(registry()) - proved)
    if missing:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"registered ops without a bit-exact test case: {', '.join(missing)}"
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(f"FAILED op registry coverage: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """One full default-target build of the tiny configuration, shared by the tests that only read it."""
    build = tmp_path_factory.mktemp("tiny_build")
    proc = run_scons(build)
    return build, proc


@pytest.fixture
def fake_sketch_inputs(tmp_path):
    """The four inputs of the sketch stage (an MLF tar with stand-in C, images.c/.h/.json), without a model."""
    return write_fake_sketch_inputs(tmp_path)


@pytest.fixture
def shared_tmp():
    """A folder other users can reach (pytest's tmp_path is under a root-only /tmp/pytest-of-root)."""
    import pathlib
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="tinyml-shared-")
    os.chmod(folder, 0o755)
    yield pathlib.Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def serial_port():
    """A real character device (a pty) standing in for a board's serial port: PORT= must name a device, and
    the arduino-cli stand-in lists this one as the board's."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)
