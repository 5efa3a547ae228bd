"""The tests' pytest hooks and fixtures; plain helpers (ROOT, run_scons, FakeBoard, ...) are in helpers.py."""
import os
import re

import pytest

from helpers import ROOT, SESSION_CACHE_ENV, run_scons, write_fake_sketch_inputs


# Every registered op must have a case that an op test found bit-exact. The op tests run on several xdist
# workers (pytest.ini), so each records the op types it proved in one file of this run (tflite_helpers.check_exact),
# and the check runs once all tests are done, in the process that ran the session.
_OP_TEST_MODULE = re.compile(r"(^|/)test_(ops\w*|mlf)\.py$")
_op_modules_passed = set()


def _is_xdist_worker(config):
    return hasattr(config, "workerinput")


def pytest_configure(config):
    import tempfile

    if not _is_xdist_worker(config) and "TINYML_EXACT_OPS_FILE" not in os.environ:
        fd, path = tempfile.mkstemp(prefix="tinyml-exact-ops-", suffix=".txt")
        os.close(fd)
        os.environ["TINYML_EXACT_OPS_FILE"] = path          # workers start later and inherit it
        config._tinyml_exact_ops_file = path
    if not _is_xdist_worker(config) and SESSION_CACHE_ENV not in os.environ:
        # The session's build cache (helpers.run_scons(cache=True)): one folder the workers inherit.
        os.environ[SESSION_CACHE_ENV] = config._tinyml_session_cache = tempfile.mkdtemp(prefix="tinyml-test-cache-")


def pytest_unconfigure(config):
    folder = getattr(config, "_tinyml_session_cache", None)
    if folder:
        import shutil

        os.environ.pop(SESSION_CACHE_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


# The order tests are handed to the xdist workers: costliest file first, so no slow file starts last and keeps one
# worker busy alone. A file's cost is its CPU seconds on the last measured run (tests/durations.json: this process
# plus the children it waited for, which unlike wall time does not depend on what else the machine ran;
# `--store-durations` rewrites it), or an estimate from its heavy tests for a file not in it. pytest.ini's
# `--dist loadfile --no-loadscope-reorder` gives each file whole to one worker, in this order.
DURATIONS = os.path.join(ROOT, "tests", "durations.json")
_HEAVY_ESTIMATE_S = 15.0


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help="write each test file's CPU seconds in this run to tests/durations.json")


def _module(nodeid):
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(session, config, items):
    import json

    try:
        with open(DURATIONS) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    cost, first = {}, {}
    for i, item in enumerate(items):
        module = _module(item.nodeid)
        if module not in known:
            cost[module] = cost.get(module, 0.0) + (_HEAVY_ESTIMATE_S if item.get_closest_marker("heavy") else 0.1)
        first.setdefault(module, i)
    for module in first:
        cost[module] = known.get(module, cost.get(module, 0.0))
    items.sort(key=lambda item: (-cost[_module(item.nodeid)], first[_module(item.nodeid)]))


# Each test's CPU seconds, setup and teardown included: this process plus the children it waited for (scons,
# gcc, QEMU, ...). Measured in the process that ran the test and carried to the session's process on the
# teardown report (xdist sends user_properties along). `--store-durations` sums them per file;
# TINYML_CPU_REPORT=path also writes them per test (`python tests/cpu_report.py path` ranks them): on a loaded
# machine that says what the suite costs where wall times mislead.
def _cpu_seconds():
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._tinyml_cpu0 = _cpu_seconds()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "teardown" and hasattr(item, "_tinyml_cpu0"):
        outcome.get_result().user_properties.append(("cpu_s", round(_cpu_seconds() - item._tinyml_cpu0, 2)))


_cpu_per_test = {}


def pytest_runtest_logreport(report):
    module = _module(report.nodeid)
    cpu = dict(report.user_properties).get("cpu_s") if report.when == "teardown" else None
    if cpu is not None:
        _cpu_per_test[report.nodeid] = cpu
    if report.when == "call" and report.passed and _OP_TEST_MODULE.search(module):
        _op_modules_passed.add(os.path.basename(module)[:-3])


def _write_cpu_records(config):
    if _is_xdist_worker(config):
        return
    from codegen.fsutil import atomic_open

    if config.getoption("store_durations"):
        import json

        per_file = {}
        for nodeid, cpu in _cpu_per_test.items():
            per_file[_module(nodeid)] = per_file.get(_module(nodeid), 0.0) + cpu
        with atomic_open(DURATIONS, "w") as f:
            json.dump({m: round(s, 1) for m, s in sorted(per_file.items())}, f, indent=0)
            f.write("\n")
    report = os.environ.get("TINYML_CPU_REPORT")
    if report:
        with atomic_open(report, "w") as f:
            f.writelines("%s\t%.2f\n" % row for row in sorted(_cpu_per_test.items()))


def pytest_sessionfinish(session, exitstatus):
    _write_cpu_records(session.config)
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
