"""The build's record across processes: one lock per build dir held for the whole build, and finished stages
that survive kill -9 (README, Troubleshooting)."""
import os
import signal
import subprocess
import time

import pytest

from helpers import ROOT, TINY, as_user_command, built_stages, run_scons, scons_exe

def _cmd(build, *targets, **variables):
    args = {**TINY, "BUILD_DIR": str(build), **variables}
    return [scons_exe(), "-C", ROOT, *[f"{k}={v}" for k, v in args.items()], *targets]


@pytest.mark.heavy
def test_two_scons_on_one_build_dir_keep_both_results(tmp_path):
    """Different targets and boards at once: the second waits for the first (before, both ran and the later
    exit's .sconsign lost the other's signatures, so the next run rebuilt them)."""
    build = tmp_path / "b"
    first = subprocess.Popen(_cmd(build, "mlf", BOARD="nano33ble"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lock = build / ".scons.lock"
    deadline = time.time() + 60
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)) and time.time() < deadline:
        time.sleep(0.1)                                   # the first scons holds the lock
    second = subprocess.Popen(_cmd(build, "check", BOARD="mega"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    out1, _ = first.communicate(timeout=900)
    out2, _ = second.communicate(timeout=900)
    assert first.returncode == 0, out1[-3000:]
    assert second.returncode == 0, out2[-3000:]
    assert "waiting for it to finish" in out2, out2[-3000:]
    assert (build / "nano33ble" / "model_mlf.tar").is_file() and (build / "mega" / "hostcheck.json").is_file()
    for targets, board in ((("mlf",), "nano33ble"), (("check",), "mega")):
        proc = run_scons(build, *targets, BOARD=board)
        assert built_stages(proc.stdout) == [] and "kept `" not in proc.stdout, proc.stdout


def _kill_when(cmd, marker, delay):
    """Runs cmd, SIGKILLs its whole process group `delay` s after `marker` is printed; returns the output."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            break
    seen += proc.stdout.read()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the build ended before it was killed:\n{seen[-3000:]}"
    return seen


def _redone(output):
    # The synthetic images are undeclared outputs of their index (NoCache, see tinyml_dataset): regenerated,
    # deterministically and in a second, by every run that finds no signature for them.
    return [s for s in built_stages(output) if not s.startswith("Generating synthetic")]


@pytest.mark.heavy
def test_kill_9_redoes_only_the_unfinished_stage(tmp_path):
    build = tmp_path / "b"
    variables = {"EPOCHS": "3", "SAMPLES": "40"}
    out = _kill_when(_cmd(build, **variables), "Epoch 2/", 0.3)
    assert "Packing dataset" in out and not (build / "nano33ble" / "model.keras").exists()

    out = _kill_when(_cmd(build, **variables), "TVM codegen", 1.0)
    assert _redone(out)[:2] == ["Training MobileNetV1", "Quantizing (TFLite PTQ)"], out   # not the dataset
    assert "kept `" in out and str(build / "nano33ble" / "dataset.npz") in out

    out = _kill_when(_cmd(build, **variables), "Host check", 0.5)
    stages = _redone(out)
    assert stages[0] == "TVM codegen (standalone C, MLF)", out       # no training or quantization again
    assert not any(s.startswith(("Training", "Quantizing", "Packing")) for s in stages), out

    proc = run_scons(build, **variables)
    assert _redone(proc.stdout) == ["Host check (gcc build + run vs TFLite)"], proc.stdout
    proc = run_scons(build, **variables)
    assert built_stages(proc.stdout) == [], proc.stdout                # and then it is a no-op


def test_read_only_build_dir_is_one_error_before_any_stage(shared_tmp):
    """As a user who may not write there (root may write anywhere): one error line, exit 2, no traceback."""
    build = shared_tmp / "b"
    build.mkdir()                                    # root's, 0755
    proc = subprocess.run(as_user_command(2005, 2005, _cmd(build)), capture_output=True, text=True, timeout=120)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stdout + proc.stderr
    assert f"cannot write to the build directory {build}" in errors[0] and "BUILD_DIR=" in errors[0]
    assert "Traceback" not in proc.stderr and os.listdir(build) == []


@pytest.mark.heavy
def test_after_a_failed_inputs_build_one_run_settles(tiny_build, tmp_path):
    """Before, after a failed IMAGES= build the next two scons runs both redid the host check."""
    build, _ = tiny_build
    run_scons(build)
    bad = tmp_path / "photo.png"
    bad.write_text("not a PNG")
    proc = run_scons(build, check=False, IMAGES=str(bad))
    assert proc.returncode != 0 and "not a readable image" in proc.stderr
    first = run_scons(build)
    assert "Training MobileNetV1" not in built_stages(first.stdout)
    second = run_scons(build)
    assert built_stages(second.stdout) == [], second.stdout
