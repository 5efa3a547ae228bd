"""End to end through scons itself: every stage on a tiny configuration, and what a second run rebuilds."""
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, FakeBoard, built_stages, run_scons

pytestmark = pytest.mark.heavy


def test_full_build_outputs_are_real(tiny_build):
    build, proc = tiny_build
    out = build / "nano33ble"
    for name in ("model.keras", "model.tflite", "metrics.json", "training_curve.png", "images.c", "images.h",
                 "model_mlf.tar", "expected.json", "hostcheck.json", "tvm_model/tvm_model.ino", "memory.json",
                 "memory.txt",
                 "tvm_model/src/model/default_lib1.c", "tvm_model/src/images.h"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["quantized_val_accuracy"] <= 1.0 and metrics["classes"] == ["random", "target"]
    with tarfile.open(out / "model_mlf.tar") as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("metadata.json"))
    assert "codegen/host/include/tvmgen_default.h" in names
    assert meta["inputs"][0]["shape"] == [1, 32, 32, 3] and meta["workspace_size_bytes"] > 0
    check = json.loads((out / "hostcheck.json").read_text())
    expected = json.loads((out / "expected.json").read_text())
    assert [r["tflite"] for r in check["images"]] == [e["scores"] for e in expected["images"]]
    # one line per image: its name, the top class of the dataset's and its confidence, the raw scores; the
    # demo's held-out images (balanced, the car first), then how many the model got right
    from codegen.stages import dataset

    per_class = dataset.demo_per_class(2)
    titles = [f"Car {i}" for i in range(1, per_class + 1)] + [f"Other object {i}" for i in range(1, per_class + 1)]
    lines = check["output"].splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == titles
    assert lines[-1] == expected["demo"]["line"]
    assert [r["line"] for r in check["images"]] == [e["line"] for e in expected["images"]]
    assert expected["labels"] == ["random", "target"] and all(r["label"] in expected["labels"] for r in check["images"])
    assert all(r["argmax"] == r["tflite_argmax"] for r in check["images"])


def test_second_run_is_a_noop(tiny_build):
    build, _ = tiny_build
    run_scons(build)                       # whatever an earlier test changed
    proc = run_scons(build)
    assert built_stages(proc.stdout) == []
    assert "is up to date" in proc.stdout
    assert run_scons(build, "-q", check=False).returncode == 0   # -q: exit 0 iff everything is up to date


# The tests below share the session's build dir (SCons signatures are tied to paths, so a copy would rebuild
# everything): each first brings the build to its own baseline, then asserts on what the next run does.


def test_editing_a_test_image_rebuilds_only_embed_sketch_and_check(tiny_build, tmp_path):
    build, _ = tiny_build
    imgs = [tmp_path / "car.png", tmp_path / "other.png"]
    for p, src in zip(imgs, ("target", "random")):
        shutil.copy(build / "nano33ble" / "heldout" / f"{src}.png", p)
    images = ",".join(map(str, imgs))
    first = built_stages(run_scons(build, IMAGES=images).stdout)
    assert "Training MobileNetV1" not in first and "TVM codegen (standalone C, MLF)" not in first
    assert built_stages(run_scons(build, IMAGES=images).stdout) == []
    arr = np.asarray(Image.open(imgs[0])).copy()
    arr[:8, :8] = 255 - arr[:8, :8]
    Image.fromarray(arr).save(imgs[0])
    stages = built_stages(run_scons(build, IMAGES=images).stdout)
    assert sorted(stages) == sorted(["Embedding images", "TFLite reference scores", "Rendering sketch",
                                     "Host check (gcc build + run vs TFLite)"])


def test_editing_a_template_rebuilds_only_sketch_and_check(tiny_build, tmp_path):
    build, _ = tiny_build
    tpl = tmp_path / "tpl"
    shutil.copytree(os.path.join(ROOT, "templates", "sketch"), tpl)
    run_scons(build, TEMPLATES=str(tpl))
    ino = tpl / "sketch.ino.j2"
    ino.write_text(ino.read_text().replace("void setup() {", "// a user's edit\nvoid setup() {"))
    proc = run_scons(build, TEMPLATES=str(tpl))
    assert built_stages(proc.stdout) == ["Rendering sketch", "Host check (gcc build + run vs TFLite)"]
    assert "// a user's edit" in (build / "nano33ble" / "tvm_model" / "tvm_model.ino").read_text()


def test_changing_epochs_retrains_and_identical_tflite_stops_there(tiny_build, tmp_path):
    build, _ = tiny_build
    run_scons(build)
    stages = built_stages(run_scons(build, EPOCHS="2").stdout)
    assert stages[0] == "Training MobileNetV1" and "Quantizing (TFLite PTQ)" in stages
    assert "Generating synthetic" not in stages and "Packing dataset" not in stages
    # Retraining with the same settings is deterministic: the .tflite comes out byte-identical, so nothing
    # after quantization runs again.
    # (--cache-disable: otherwise the finished-target records put the deleted model.keras back, as SCons'
    # CacheDir would)
    tflite = (build / "nano33ble" / "model.tflite").read_bytes()
    (build / "nano33ble" / "model.keras").unlink()
    stages = built_stages(run_scons(build, "--cache-disable", EPOCHS="2").stdout)
    assert stages == ["Training MobileNetV1", "Quantizing (TFLite PTQ)"]
    assert (build / "nano33ble" / "model.tflite").read_bytes() == tflite


def test_compile_without_arduino_cli_says_how_to_install(tiny_build, tmp_path):
    build, _ = tiny_build
    proc = run_scons(build, "compile", check=False, ARDUINO_CLI="no-such-arduino-cli")
    assert proc.returncode != 0
    assert "arduino-cli not found" in proc.stderr and "install" in proc.stderr
    assert "tvm_model" in proc.stderr
    assert not (build / "nano33ble" / "firmware" / "compile.json").exists()


def test_compile_and_upload_call_arduino_cli_only_when_needed(tiny_build, tmp_path):
    build, _ = tiny_build
    run_scons(build)
    board = FakeBoard()                 # runs something else at first
    serial_port = board.port
    log = tmp_path / "calls.log"
    cli = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")
    ports = json.dumps([[serial_port, "0x2341", "0x805A", "arduino:mbed_nano:nano33ble"]])
    env = {"FAKE_ARDUINO_LOG": str(log), "FAKE_ARDUINO_PORTS": ports}

    def calls():
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return [" ".join(json.loads(l)[:2]) for l in lines]

    run_scons(build, "upload", env=env, ARDUINO_CLI=cli)
    assert calls() == ["core list", "compile --fqbn", "board list", "upload --fqbn"]
    result = json.loads((build / "nano33ble" / "firmware" / "compile.json").read_text())
    assert "arduino:mbed_nano:nano33ble" in result["command"] and result["sections"]["text"]["size"] > 0

    board.runs = result["build_id"]              # the board now runs this build and says so
    proc = run_scons(build, "upload", env=env, ARDUINO_CLI=cli, PORT=serial_port)
    assert calls() == []                         # the board reports this build: nothing to do
    assert "upload skipped" in proc.stdout
    run_scons(build, "upload", env=env, ARDUINO_CLI=cli, PORT=serial_port, FORCE="1")
    assert calls() == ["upload --fqbn"]

    # Other test images: the sketch changes, so compile once and upload once; then an edit of one image does
    # the same again.
    imgs = [tmp_path / "car.png", tmp_path / "other.png"]
    for p, src in zip(imgs, ("target", "random")):
        shutil.copy(build / "nano33ble" / "heldout" / f"{src}.png", p)
    images = ",".join(map(str, imgs))
    run_scons(build, "upload", env=env, ARDUINO_CLI=cli, PORT=serial_port, IMAGES=images)
    assert calls() == ["core list", "compile --fqbn", "upload --fqbn"]
    arr = np.asarray(Image.open(imgs[0])).copy()
    arr[:4, :4] = 255 - arr[:4, :4]
    Image.fromarray(arr).save(imgs[0])
    run_scons(build, "upload", env=env, ARDUINO_CLI=cli, PORT=serial_port, IMAGES=images)
    assert calls() == ["core list", "compile --fqbn", "upload --fqbn"]

    # A failed upload leaves the board on its old build, so the next run uploads again.
    proc = run_scons(build, "upload", check=False, env={**env, "FAKE_ARDUINO_FAIL": "upload"}, ARDUINO_CLI=cli,
                     PORT=serial_port, FORCE="1", IMAGES=images)
    assert proc.returncode != 0 and "fake upload error" in proc.stderr
    calls()
    run_scons(build, "upload", env=env, ARDUINO_CLI=cli, PORT=serial_port, IMAGES=images)
    assert calls() == ["upload --fqbn"]

    # Missing core and compile errors: one clear message each, and the next run retries.
    proc = run_scons(build, "compile", check=False, env={**env, "FAKE_ARDUINO_CORES": "arduino:avr"},
                     ARDUINO_CLI=cli)
    assert proc.returncode != 0 and "core install arduino:mbed_nano" in proc.stderr
    (build / "nano33ble" / "tvm_model" / "tvm_model.ino").unlink()   # force a recompile below
    proc = run_scons(build, "compile", check=False, env={**env, "FAKE_ARDUINO_FAIL": "compile"}, ARDUINO_CLI=cli)
    assert proc.returncode != 0 and "fake compile error" in proc.stderr
    calls()
    run_scons(build, "compile", env=env, ARDUINO_CLI=cli)
    assert calls() == ["core list", "compile --fqbn"]
    board.close()


def test_several_boards_build_in_parallel(tiny_build):
    build, _ = tiny_build
    proc = run_scons(build, "sketch", "-j2", BOARD="nano33ble,due")
    for board in ("nano33ble", "due"):
        assert (build / board / "tvm_model" / "tvm_model.ino").is_file()
    assert "Training MobileNetV1" in proc.stdout    # due has its own build dir


def test_simulate_on_cortex_m4_and_avr(tiny_build):
    from codegen.runners import avr
    from codegen.runners import qemu

    if not (qemu.toolchain_available() and avr.toolchain_available()):
        pytest.skip("needs arm-none-eabi-gcc, qemu-system-arm, arduino-builder and simavr (./dev test installs them)")
    build, _ = tiny_build
    memory = json.loads((build / "nano33ble" / "memory.json").read_text())
    assert memory["board"]["name"] == "nano33ble" and memory["constants_bytes"] > 0 and memory["code_measured"]
    run_scons(build, "simulate")
    sim = json.loads((build / "nano33ble" / "simulate.json").read_text())
    expected = json.loads((build / "nano33ble" / "expected.json").read_text())
    assert [i["scores"] for i in sim["images"]] == [e["scores"] for e in expected["images"]]
    assert sim["instructions_per_inference"] > 0
    # The Mega gets its board defaults (32x32 grayscale, 2 blocks): the real sketch, built by arduino-builder,
    # runs in simavr and prints TFLite's scores.
    proc = run_scons(build, "simulate", BOARD="mega")
    assert "scores identical to TFLite" in proc.stdout
    sim = json.loads((build / "mega" / "simulate.json").read_text())
    expected = json.loads((build / "mega" / "expected.json").read_text())
    assert [i["scores"] for i in sim["images"]] == [e["scores"] for e in expected["images"]]
    assert sim["ram_bytes"] <= 8192 and sim["flash_bytes"] <= 253952
