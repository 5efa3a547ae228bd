"""The tool imports and stops its children without POSIX-only modules and signals (macOS/Windows users).

We cannot run Windows here, so each test runs in a Python where what Windows lacks is taken away before the
project is imported: the modules fcntl, termios, resource, pwd, grp; signal.SIGHUP, pthread_sigmask;
os.killpg, os.getpgid, os.setsid. Before the port, tinyml_state imported fcntl at module level and
codegen.interrupt read signal.SIGHUP at import: both failed here.
"""
import os
import subprocess
import sys
import textwrap

from helpers import ROOT

WITHOUT_POSIX = """
import os, signal, sys
# Third-party libraries pick their platform's backend themselves (psutil's Linux one needs `resource`,
# filelock's Unix one fcntl; on Windows they use theirs): loaded first, they are not what is tested.
import filelock, psutil, subprocess, SCons.Script
for name in ("fcntl", "termios", "resource", "pwd", "grp"):
    sys.modules[name] = None                      # `import fcntl` now raises ImportError, as on Windows
for name in ("SIGHUP", "pthread_sigmask", "SIGQUIT", "SIGUSR1"):   # SIGKILL stays: psutil's Linux backend sends it
    if hasattr(signal, name):
        delattr(signal, name)
for name in ("killpg", "getpgid", "setsid"):
    if hasattr(os, name):
        delattr(os, name)
sys.path[:0] = [{root!r}, {tools!r}]
"""


def _run(body):
    code = WITHOUT_POSIX.format(root=ROOT, tools=os.path.join(ROOT, "site_scons", "site_tools")) \
        + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_every_build_module_imports_without_posix_only_apis():
    proc = _run("""
        import importlib, pkgutil
        import codegen
        failed = []
        names = [m.name for m in pkgutil.walk_packages(codegen.__path__, "codegen.")
                 if ".bundle_files" not in m.name and not m.name.endswith("__main__")]   # run.py: on the Pi
        tools = sorted(n[:-3] for n in os.listdir(sys.path[1]) if n.endswith(".py"))
        for name in names + tools:
            try:
                importlib.import_module(name)
            except Exception as e:
                failed.append(f"{name}: {type(e).__name__}: {e}")
        print(len(names + tools), "modules")
        assert not failed, "\\n".join(failed)
    """)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert int(proc.stdout.split()[-2]) > 40


def test_stopping_kills_a_child_and_its_children_without_process_groups():
    """codegen.interrupt.request_stop on a child that started a grandchild: psutil kills both (where killpg is
    missing), and the signal-mask helpers do nothing instead of failing."""
    proc = _run("""
        import subprocess, sys, time
        import psutil
        from codegen import interrupt
        interrupt.block_stop_signals()
        with interrupt.spawning():
            child = subprocess.Popen([sys.executable, "-c",
                "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
                " time.sleep(60)"])
        deadline = time.time() + 30
        while not psutil.Process(child.pid).children() and time.time() < deadline:
            time.sleep(0.05)
        (grandchild,) = psutil.Process(child.pid).children()
        try:
            with interrupt.child(child, own_group=True):
                interrupt.request_stop()
        except KeyboardInterrupt:
            pass
        child.wait(timeout=10)
        grandchild.wait(timeout=10)
        print("killed", child.returncode)
    """)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith("killed -9"), proc.stdout
