"""codegen.quiet: a stage that silences TensorFlow never hides another thread's lines (scons -j2)."""
import os
import subprocess
import sys

from helpers import ROOT

SCRIPT = r"""
import os, subprocess, sys, threading, time
sys.path.insert(0, %(root)r)
from codegen.quiet import quiet, stage_running

inside = threading.Event()
def noisy_stage():
    with stage_running():
        with quiet():
            inside.set()
            print("noise from python")
            os.write(1, b"noise from C\n")
            os.write(2, b"noise from C on stderr\n")
            time.sleep(0.6)

def other_stage():
    inside.wait()
    with stage_running():                 # starts while the noisy stage is muted
        subprocess.run(["echo", "child of the other stage"])
        sys.stderr.write("error: the other stage failed\n")

threads = [threading.Thread(target=noisy_stage), threading.Thread(target=other_stage)]
for t in threads:
    t.start()
inside.wait()
print("scons: done building targets.")    # the main thread, while the noisy stage is muted
for t in threads:
    t.join()
with quiet():                             # alone: C-level output is muted too
    os.write(1, b"alone C noise\n")
    print("alone python noise")
print("after")
"""


def test_quiet_mutes_only_its_own_thread():
    proc = subprocess.run([sys.executable, "-c", SCRIPT % {"root": ROOT}], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for line in ("scons: done building targets.", "error: the other stage failed", "child of the other stage",
                 "after"):
        assert line in out, out
    assert "noise from python" not in out and "alone python noise" not in out and "alone C noise" not in out, out
    # The noisy stage muted descriptors 1 and 2 while it was the only stage; the other stage waited for that
    # to end before it started, so its child's line was not swallowed either.
    assert "noise from C" not in out, out
