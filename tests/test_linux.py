"""The Linux single-board route (BOARD=rpi4, rpi5, rpi_zero2): the LiteRT bundle, its check in the isolated
runtime venv against tf.lite, the memory/latency report, and upload/monitor over ssh against a real OpenSSH
server started here on 127.0.0.1 (throw-away host and user keys, a free port): no mock."""
import getpass
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from codegen import config
from codegen import boards
from codegen.errors import ConfigError, PipelineError
from codegen.linux import targets
from helpers import run_scons

LINUX_BOARDS = ("rpi4", "rpi5", "rpi_zero2")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def assert_one_clean_error(proc, needle):
    assert proc.returncode != 0, proc.stdout[-2000:]
    errors = error_lines(proc)
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout


# --- board data and the stage check (fast) ---------------------------------------------------------------------

def test_linux_boards_are_data():
    for name in LINUX_BOARDS:
        b = boards.get(name)
        assert boards.is_linux(b) and b["arch"] == "aarch64" and b["cores"] >= 1 and b["ram_bytes"] >= 1 << 29
        assert "fqbn" not in b
    assert not boards.is_linux(boards.get("nano33ble"))


@pytest.mark.parametrize("raw,stages,needle", [
    ({"BOARD": "rpi4"}, ["simulate"], "no simulate stage"),
    ({"BOARD": "rpi4"}, ["compile"], "no compile stage"),
    ({"BOARD": "rpi_zero2"}, ["mlf", "sketch"], "no mlf, sketch stage"),
    ({"BOARD": "nano33ble,rpi5"}, ["simulate-rpi5"], "no simulate stage"),
    ({"BOARD": "nano33ble"}, ["bundle"], "is a Linux-board stage"),
    ({"BOARD": "rpi4"}, ["upload"], "needs the board's ssh address"),
    ({"BOARD": "rpi4"}, ["monitor-rpi4"], "needs the board's ssh address"),
    ({"BOARD": "rpi4", "HOST": "pi@pi", "PORT": "2222"}, ["upload"], "give its port as SSH_PORT="),
])
def test_a_stage_the_board_lacks_is_a_config_error(raw, stages, needle):
    with pytest.raises(ConfigError, match=needle):
        targets.check(config.parse(raw), stages)


def test_the_stages_a_board_has_pass():
    targets.check(config.parse({"BOARD": "rpi4", "HOST": "pi@raspberrypi.local"}),
                  ["check", "memory", "bundle", "upload", "monitor", "report"])
    targets.check(config.parse({"BOARD": "nano33ble"}), ["simulate", "compile", "check"])


@pytest.mark.parametrize("raw,needle", [
    ({"SSH_PORT": "99999"}, "not a TCP port"),
    ({"HOST": "pi@host:22", "SSH_PORT": "2222"}, "give the port once"),
    ({"HOST": "-oProxyCommand=x"}, "not an ssh destination"),
    ({"SSH_KEY": "/no/such/key"}, "does not exist"),
    ({"UPLOAD_WITH": "ftp"}, "not supported"),
    ({"BENCH_RUNS": "0"}, "at least 1"),
])
def test_bad_ssh_variables_fail_with_a_clear_message(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        config.parse(raw)


def test_host_with_a_port_suffix():
    cfg = config.parse({"HOST": "pi@raspberrypi.local:2222"})
    assert (cfg["host"], cfg["ssh_port"]) == ("pi@raspberrypi.local", 2222)


@pytest.mark.parametrize("args,needle", [
    (["simulate", "BOARD=rpi4"], "BOARD=rpi4 (Raspberry Pi 4 Model B) is a Linux board"),
    (["compile", "BOARD=rpi_zero2"], "no compile stage"),
    (["upload", "BOARD=rpi4"], "HOST=user@host"),
    (["check", "BOARD=rpi4,nano33ble", "QUANT=float16"], "need QUANT=int8"),
])
def test_scons_stops_before_any_stage(tmp_path, args, needle):
    targets_, variables = [a for a in args if "=" not in a], dict(a.split("=", 1) for a in args if "=" in a)
    proc = run_scons(tmp_path, *targets_, check=False, **variables)
    assert_one_clean_error(proc, needle)
    assert proc.returncode == 2
    assert not os.path.exists(tmp_path / "dataset") and "Training" not in proc.stdout


@pytest.mark.heavy
def test_a_runtime_venv_pip_cannot_build_is_one_error_and_leaves_nothing(tmp_path):
    """pip fails (here: a wheel that is not there; no registry involved): one PipelineError with pip's reason,
    and no venv folder that a later run would take for a complete one."""
    from codegen.linux import runtime_env

    req = tmp_path / "requirements.txt"
    req.write_text(f"{tmp_path / 'no_such_runtime-1.0-py3-none-any.whl'}\n")
    root = tmp_path / "venvs"
    with pytest.raises(PipelineError, match="pip could not install the bundle's requirements.txt") as err:
        runtime_env.runtime_python(str(req), str(root), log=lambda *a, **k: None)
    assert "no_such_runtime" in str(err.value) or "does not exist" in str(err.value)
    assert [p for p in os.listdir(root) if not p.endswith(".lock")] == []


# --- a real build for a Raspberry Pi 4 ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rpi_build(tmp_path_factory):
    """The default targets (report memory check) for BOARD=rpi4 in the tiny configuration."""
    build = tmp_path_factory.mktemp("rpi_build")
    proc = run_scons(build, BOARD="rpi4")
    return build, proc


def _venv_python(check):
    return os.path.join(check["venv"], "bin", "python")


@pytest.mark.heavy
def test_bundle_runs_in_an_isolated_venv_with_tflite_scores(rpi_build):
    build, proc = rpi_build
    bundle = build / "rpi4" / "bundle"
    for name in ("model.tflite", "labels.txt", "run.py", "requirements.txt", "bundle.json"):
        assert (bundle / name).is_file(), name
    assert sorted(os.listdir(bundle / "samples")) == ["random.png", "target.png"]
    assert (bundle / "labels.txt").read_text().split() == ["random", "target"]
    import re

    reqs = [re.split(r"[<>=;\s]", line)[0].lower() for line in (bundle / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert reqs == ["ai-edge-litert", "numpy", "pillow"]
    assert (bundle / "model.tflite").read_bytes() == (build / "rpi4" / "model.tflite").read_bytes()

    check = json.loads((build / "rpi4" / "linuxcheck.json").read_text())
    assert check["exact"] and check["quant"] == "int8" and check["runtime"].startswith("ai_edge_litert")
    assert len(check["samples"]) == 2 and all(r["exact"] and r["same_input"] for r in check["samples"])
    assert "scores equal tf.lite" in proc.stdout
    # The venv is the bundle's requirements only: no TensorFlow to fall back on.
    packages = " ".join(check["venv_packages"]).lower()
    assert "ai-edge-litert" in packages or "ai_edge_litert" in packages
    assert "tensorflow" not in packages
    probe = subprocess.run([_venv_python(check), "-I", "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr

    # The bundle's quantized input tensors are the very bytes the MCU route embeds for the same images.
    from codegen.emit import bin2c
    from codegen.modelio.quantio import model_io

    inp = model_io(str(bundle / "model.tflite"))["input"]
    for row in check["samples"]:
        raw = bin2c.load_input(str(bundle / "samples" / row["name"]), inp)
        assert hashlib.sha256(raw).hexdigest() == row["input_sha256"]

    # What a user types on the Pi: a folder in, one line per image with label, confidence and latency.
    text = subprocess.run([_venv_python(check), "-I", str(bundle / "run.py"), str(bundle / "samples")],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(text) == 2 and all(line.endswith(" ms") and "%" in line for line in text), text
    assert text[0].startswith("random.png: ")
    # No camera library in the runtime venv: one error saying what to install.
    cam = subprocess.run([_venv_python(check), "-I", str(bundle / "run.py"), "--camera"], capture_output=True,
                         text=True)
    assert cam.returncode == 2 and cam.stderr.startswith("error: --camera needs picamera2"), cam.stderr


@pytest.mark.heavy
def test_memory_report_labels_the_x86_latency(rpi_build):
    build, _ = rpi_build
    rep = json.loads((build / "rpi4" / "memory.json").read_text())
    model_bytes = os.path.getsize(build / "rpi4" / "bundle" / "model.tflite")
    assert rep["board"] == "rpi4" and rep["model_bytes"] == model_bytes
    assert 0 < rep["parameters_bytes"] < model_bytes and rep["activations_bytes"] > 0
    measured = rep["measured_here"]
    assert "rough guide" in measured["note"] and measured["threads"] == boards.get("rpi4")["cores"]
    assert measured["latency_ms_median"] > 0 and measured["peak_rss_bytes"] > measured["runtime_only_rss_bytes"] > 0
    text = (build / "rpi4" / "memory.txt").read_text()
    assert "ROUGH GUIDE ONLY" in text and "not on the cortex-a72" in text


@pytest.mark.heavy
def test_noop_rebuilds_nothing(rpi_build):
    build, _ = rpi_build
    start = time.monotonic()
    proc = run_scons(build, BOARD="rpi4")
    elapsed = time.monotonic() - start
    assert "Bundling" not in proc.stdout and "LiteRT check" not in proc.stdout and "Training" not in proc.stdout
    print(f"\nno-op scons BOARD=rpi4: {elapsed:.2f} s")


@pytest.mark.heavy
def test_check_fails_when_run_py_prepares_inputs_differently(rpi_build, tmp_path):
    """A runner whose resize differs from the build's gives other input bytes: the check must say so."""
    from codegen.linux import check

    build, _ = rpi_build
    bundle = tmp_path / "bundle"
    shutil.copytree(build / "rpi4" / "bundle", bundle)
    run_py = bundle / "run.py"
    run_py.write_text(run_py.read_text().replace("Image.BILINEAR", "Image.NEAREST"))
    venv_root = os.path.dirname(json.loads((build / "rpi4" / "linuxcheck.json").read_text())["venv"])
    out = tmp_path / "linuxcheck.json"
    with pytest.raises(PipelineError, match="does not give tf.lite's scores for"):
        check.check_bundle(str(bundle), str(out), venv_root=venv_root)
    assert not out.exists()


# --- upload and monitor against a real sshd -------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tinyml-test", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An OpenSSH server on 127.0.0.1 at a free port that lets this user in with a throw-away key."""
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("needs OpenSSH (apt-get install openssh-server openssh-client)")
    d = tmp_path_factory.mktemp("sshd")
    host_key, user_key = _keygen(d / "host_key"), _keygen(d / "id_user")
    shutil.copy(d / "id_user.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {d}/sshd.pid",
        f"AuthorizedKeysFile {d}/authorized_keys", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        "Subsystem sftp /usr/lib/openssh/sftp-server", "LogLevel ERROR", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)    # sshd's privilege-separation folder
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    known_hosts = d / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join((d / 'host_key.pub').read_text().split()[:2])}\n")
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
            time.sleep(0.1)
    yield {"dir": d, "port": port, "key": str(user_key), "known_hosts": str(known_hosts),
           "host": f"{getpass.getuser()}@127.0.0.1"}
    proc.terminate()
    proc.wait(timeout=10)


def _ssh_vars(sshd, remote_dir, **extra):
    return {"BOARD": "rpi4", "HOST": sshd["host"], "SSH_PORT": str(sshd["port"]), "SSH_KEY": sshd["key"],
            "SSH_KNOWN_HOSTS": sshd["known_hosts"], "REMOTE_DIR": str(remote_dir), **extra}


def _tree(path):
    out = {}
    for root, _, files in os.walk(path):
        for n in files:
            p = os.path.join(root, n)
            out[os.path.relpath(p, path)] = open(p, "rb").read()
    return out


@pytest.mark.heavy
def test_upload_copies_only_a_changed_bundle_and_monitor_runs_it(rpi_build, sshd, tmp_path):
    build, _ = rpi_build
    remote_dir = tmp_path / "board" / "tinyml"
    variables = _ssh_vars(sshd, remote_dir)
    bundle = build / "rpi4" / "bundle"

    first = run_scons(build, "upload", **variables)
    assert "bundle copied to" in first.stdout and "with rsync" in first.stdout
    remote = _tree(remote_dir)
    digest = remote.pop(".tinyml-bundle.sha256").decode().strip()
    assert remote == _tree(bundle) and len(digest) == 64

    again = run_scons(build, "upload", **variables)
    assert "upload skipped" in again.stdout and "bundle copied" not in again.stdout

    # A copy that never recorded its hash (interrupted) is redone; files of an older bundle go.
    os.remove(remote_dir / ".tinyml-bundle.sha256")
    (remote_dir / "samples" / "stale.png").write_bytes(b"old")
    redo = run_scons(build, "upload", **variables)
    assert "bundle copied to" in redo.stdout and not (remote_dir / "samples" / "stale.png").exists()

    forced = run_scons(build, "upload", FORCE="1", UPLOAD_WITH="scp", **variables)
    assert "with scp" in forced.stdout
    remote = _tree(remote_dir)
    assert remote.pop(".tinyml-bundle.sha256").decode().strip() == digest and remote == _tree(bundle)

    # Run on the "board" with the Python that has the runtime, compared with the check's tf.lite scores.
    check = json.loads((build / "rpi4" / "linuxcheck.json").read_text())
    mon = run_scons(build, "monitor", REMOTE_PYTHON=_venv_python(check), **variables)
    assert "upload skipped" in mon.stdout and "equal tf.lite's" in mon.stdout
    for row in check["samples"]:
        assert f"  {row['name']}: {row['top']} " in mon.stdout
    free = run_scons(build, "monitor", REMOTE_PYTHON=_venv_python(check), RUN_ARGS="--benchmark 3 samples",
                     **variables)
    assert "random.png: " in free.stdout and " ms" in free.stdout

    # The board's own python3 has no runtime: one error that says what to install.
    bare = run_scons(build, "monitor", check=False, **variables)
    assert_one_clean_error(bare, "install the runtime on the board")


@pytest.mark.heavy
def test_ssh_problems_are_one_clear_error_line(rpi_build, sshd, tmp_path):
    build, _ = rpi_build
    remote_dir = tmp_path / "board"
    unknown = tmp_path / "known_hosts"
    unknown.write_text("")
    proc = run_scons(build, "upload", check=False, **_ssh_vars(sshd, remote_dir, SSH_KNOWN_HOSTS=str(unknown)))
    assert_one_clean_error(proc, "is not known")
    assert "SSH_ACCEPT_NEW=1" in proc.stderr and not remote_dir.exists()

    accepted = run_scons(build, "upload", **_ssh_vars(sshd, remote_dir, SSH_KNOWN_HOSTS=str(unknown),
                                                      SSH_ACCEPT_NEW="1"))
    assert "bundle copied" in accepted.stdout and "Bundling" not in accepted.stdout    # only the upload reran
    recorded = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd['port']}", "-f", str(unknown)],
                              capture_output=True, text=True)       # the entry may be hashed (HashKnownHosts)
    assert recorded.returncode == 0 and "ssh-ed25519" in recorded.stdout

    other_key = _keygen(tmp_path / "other_host_key")
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd['port']} {' '.join(open(f'{other_key}.pub').read().split()[:2])}\n")
    proc = run_scons(build, "upload", check=False, FORCE="1",
                     **_ssh_vars(sshd, remote_dir, SSH_KNOWN_HOSTS=str(changed), SSH_ACCEPT_NEW="1"))
    assert_one_clean_error(proc, "has CHANGED")

    stranger = _keygen(tmp_path / "id_stranger")
    proc = run_scons(build, "upload", check=False, FORCE="1", **_ssh_vars(sshd, remote_dir, SSH_KEY=str(stranger)))
    assert_one_clean_error(proc, "refused the ssh login")

    proc = run_scons(build, "upload", check=False, FORCE="1", **_ssh_vars(sshd, remote_dir, SSH_PORT=str(_free_port())))
    assert_one_clean_error(proc, "cannot connect to")
    assert "Connection refused" in proc.stderr


# --- the other quantization modes ------------------------------------------------------------------------------------

@pytest.mark.heavy
@pytest.mark.parametrize("quant", ["float16", "dynamic"])
def test_float_quant_modes_bundle_and_check(rpi_build, quant):
    """QUANT=float16 / dynamic: float input and output; the bundle's scores equal tf.lite's all the same. Same
    build dir: only quantize and later stages rerun (the trained model is reused)."""
    build, _ = rpi_build
    proc = run_scons(build, "check", "memory", BOARD="rpi4", QUANT=quant)
    assert "Training" not in proc.stdout
    spec = json.loads((build / "rpi4" / "bundle" / "bundle.json").read_text())
    check = json.loads((build / "rpi4" / "linuxcheck.json").read_text())
    assert spec["quant"] == quant and spec["input"]["dtype"] == "float32" and spec["pixel_range"] == [0, 255]
    assert check["exact"] and check["quant"] == quant
    assert all(isinstance(v, float) for r in check["samples"] for v in r["scores"])
    assert json.loads((build / "rpi4" / "memory.json").read_text())["quant"] == quant


# --- models the user brings (MLPerf Tiny, from ../shared) -------------------------------------------------------------

SHARED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "shared", "models")


@pytest.mark.heavy
@pytest.mark.parametrize("model,board,with_image,pixel_range", [
    ("vww_96_int8.tflite", "rpi4", True, [0, 1]),        # input quantized for 0..1: pixels are normalized
    ("kws_ref_model.tflite", "rpi_zero2", False, None),   # no test images: seeded random input tensors (.npy)
])
def test_mlperf_models_bundle_and_check(tmp_path, rpi_build, model, board, with_image, pixel_range):
    path = os.path.join(SHARED_MODELS, model)
    if not os.path.isfile(path):
        pytest.skip(f"needs ../shared/models/{model} (MLPerf Tiny)")
    variables = {"BOARD": board, "MODEL": path}
    if with_image:
        build, _ = rpi_build
        variables["INPUTS"] = str(build / "rpi4" / "bundle" / "samples" / "target.png")
        labels = tmp_path / "labels.txt"
        labels.write_text("no person\nperson\n")
        variables["LABELS"] = str(labels)
    proc = run_scons(tmp_path / "build", "check", **variables)
    bundle = tmp_path / "build" / board / "bundle"
    spec = json.loads((bundle / "bundle.json").read_text())
    check = json.loads((tmp_path / "build" / board / "linuxcheck.json").read_text())
    assert check["exact"] and all(r["same_input"] for r in check["samples"]), proc.stdout[-2000:]
    if pixel_range:
        assert spec["pixel_range"] == pixel_range
    if with_image:
        assert os.listdir(bundle / "samples") == ["target.png"] and spec["labels"] == ["no person", "person"]
        assert check["samples"][0]["top"] in spec["labels"]
    else:
        assert sorted(os.listdir(bundle / "samples")) == ["input0.npy", "input1.npy"]


@pytest.mark.heavy
def test_float_user_models_on_a_linux_board(rpi_build, tmp_path):
    """A Keras MODEL= may be quantized to dynamic range for a Linux board (not for an MCU), and a float .tflite
    MODEL= runs as it is there."""
    build, _ = rpi_build
    keras_model = str(build / "rpi4" / "model.keras")
    with pytest.raises(ConfigError, match="drop QUANT="):
        config.parse({"MODEL": keras_model, "QUANT": "dynamic", "BOARD": "nano33ble,rpi4"})
    run_scons(tmp_path / "k", "check", BOARD="rpi4", MODEL=keras_model, QUANT="dynamic")
    check = json.loads((tmp_path / "k" / "rpi4" / "linuxcheck.json").read_text())
    assert check["exact"] and check["quant"] == "dynamic"

    float_tflite = tmp_path / "float_model.tflite"
    shutil.copy(tmp_path / "k" / "rpi4" / "model.tflite", float_tflite)
    run_scons(tmp_path / "f", "check", BOARD="rpi5", MODEL=str(float_tflite))
    check = json.loads((tmp_path / "f" / "rpi5" / "linuxcheck.json").read_text())
    assert check["exact"] and sorted(r["name"] for r in check["samples"]) == ["input0.npy", "input1.npy"]
    assert all(isinstance(v, float) for r in check["samples"] for v in r["scores"])
    assert check["quant"] == "dynamic"      # what the model holds, read from its tensors
