"""BACKEND=tinymaix (codegen/backends/tinymaix): TinyMaix's converter and runtime from ../shared/tinymaix-tree, its
steps called in order (convert -> sketch -> check -> memory -> simulate) on the inputs the project's own images
and expected stages make.

Which models TinyMaix converts (measured with the trimmed tree at 0532eceb, TF 2.21): its own mnist_valid_q,
mnist_dw_q, mnist_resnet_q, cifar10_q and mbnet96_0.25_q; of ../shared/models none (AVERAGE_POOL_2D in vww_96 and
the ResNet, QUANTIZE in the ST models' uint8/float I/O, LSTM, LEAKY_RELU, int16 activations; ad01 and kws store
their op codes in the old field, which the converter's reader misreads as ADD)."""
import json
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tflite_helpers import SHARED_MODELS  # noqa: E402

from codegen.errors import ConfigError, ModelError  # noqa: E402

TREE = os.path.join(os.path.dirname(SHARED_MODELS), "tinymaix-tree")
MNIST = os.path.join(TREE, "tools", "tflite", "mnist_valid_q.tflite")
VWW = os.path.join(SHARED_MODELS, "vww_96_int8.tflite")
NANO = {"name": "nano33ble", "title": "Arduino Nano 33 BLE", "cpu": "cortex-m4f", "core": "arduino:mbed_nano",
        "fqbn": "arduino:mbed_nano:nano33ble", "flash_bytes": 983040, "ram_bytes": 262144, "usb_cdc": True,
        "emulator": "qemu-mps2-an386", "clock_hz": 64000000, "flash_wait_states": 0}


def need(*paths):
    for p in paths:
        if not os.path.exists(p):
            pytest.skip(f"{p} is absent (../shared comes with the project's CI, not with a user's clone)")


def need_arm():
    if not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"):
        pytest.skip("needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm")


def _digits(tmp_path):
    """The two handwritten digits of TinyMaix's mnist example (examples/mnist/main.c) as PNG files."""
    import re

    import numpy as np
    from PIL import Image

    with open(os.path.join(TREE, "examples", "mnist", "main.c")) as f:
        arrays = re.findall(r"mnist_pic\[28\*28\]=\{(.*?)\};", f.read(), re.S)
    paths = []
    for k, text in enumerate(arrays):
        pixels = np.array([int(x) for x in re.findall(r"\d+", text)], dtype=np.uint8).reshape(28, 28)
        paths.append(str(tmp_path / f"digit{k}.png"))
        Image.fromarray(pixels, "L").save(paths[-1])
    return paths


def _inputs(tmp_path, model, files=()):
    """images.c/.h/.json and expected.json for `model`, made by the project's own images and expected stages."""
    from codegen.emit import bin2c
    from codegen.stages.expected import reference_scores

    paths = {k: str(tmp_path / f) for k, f in (("images_c", "images.c"), ("images_h", "images.h"),
                                                ("images_json", "images.json"), ("expected", "expected.json"))}
    bin2c.embed(list(files), model, paths["images_c"], paths["images_h"], paths["images_json"])
    reference_scores(model, paths["images_json"], paths["expected"])
    return paths


def _steps(out="build/nano33ble", board=NANO):
    """The backend's steps for `board` under `out`, as the pipeline asks for them."""
    from codegen.backends import base, get
    from codegen.resources import sketch_templates_dir

    ctx = base.Context(board=board, cfg={"tinymaix_dir": TREE}, out=str(out), templates=sketch_templates_dir(),
                       expected_path=os.path.join(str(out), "expected.json"))
    return get("tinymaix").steps(ctx)


def _run(step, folder, inputs, outputs_of, extra=None):
    """Calls a Step's action as the glue does: sources resolved in order, outputs under the backend's folder, the
    parameters the glue's own function makes (the board: only the fields the step declares)."""
    sys.path.insert(0, os.path.join(ROOT, "site_scons", "site_tools"))
    from tinyml_backends import _step_params
    sources = []
    for s in step.sources:
        if s.startswith("step:"):
            sources += outputs_of[s[5:]]
        elif s in inputs:
            sources.append(inputs[s])
        else:
            sources.append(s)
    targets = [str(folder / o) for o in step.outputs]
    params = _step_params(str(folder), NANO, step)
    step.action(targets, sources, params)
    outputs_of[step.id] = targets
    return targets


def test_registered_with_its_variable():
    from codegen import backends, config

    b = backends.get("tinymaix")
    assert b.name == b.folder == "tinymaix" and not b.exact and "tinymaix" in backends.names()
    assert "TINYMAIX_DIR" in config.VARIABLES
    cfg = config.parse({"BACKEND": "tvm,tinymaix", "TINYMAIX_DIR": "/x"})
    assert cfg["backends"] == ["tvm", "tinymaix"] and cfg["tinymaix_dir"] == "/x"


def test_missing_or_wrong_tree_and_avr_are_one_config_error(tmp_path):
    from codegen.backends import get

    b = get("tinymaix")
    with pytest.raises(ConfigError, match="needs TINYMAIX_DIR="):
        b.check({"tinymaix_dir": ""}, NANO)
    with pytest.raises(ConfigError, match="is not a TinyMaix checkout"):
        b.check({"tinymaix_dir": str(tmp_path)}, NANO)
    need(TREE)
    with pytest.raises(ConfigError, match="needs a 32-bit CPU"):
        b.check({"tinymaix_dir": TREE}, {"name": "mega", "title": "Arduino Mega", "cpu": "atmega2560"})
    b.check({"tinymaix_dir": TREE}, NANO)


def test_an_op_tinymaix_cannot_convert_is_one_error_naming_it(tmp_path):
    need(TREE, VWW)
    from codegen.backends.tinymaix import convert

    with pytest.raises(ModelError) as e:
        convert.convert(VWW, TREE, str(tmp_path / "m.tmdl"), str(tmp_path / "m.h"), str(tmp_path / "l.json"))
    msg = str(e.value)
    assert msg.startswith("vww_96_int8.tflite: TinyMaix's converter cannot convert AVERAGE_POOL_2D (")
    assert "BACKEND=tvm" in msg and "\n" not in msg and not os.listdir(tmp_path)


def test_steps_are_data_with_the_tree_in_their_signature():
    need(TREE)
    from codegen.backends.tinymaix.tree import tree_digest

    steps = _steps()
    assert [s.id for s in steps] == ["convert", "sketch", "check", "memory", "simulate"]
    assert all(s.params["tree"] == tree_digest(TREE) for s in steps if s.id != "sketch")
    sketch = steps[1]
    assert "tinymaix_model/tinymaix_model.ino" in sketch.outputs and "tinymaix_model/src/model.c" in sketch.outputs
    assert "tinymaix_model/sketch.yaml" in sketch.outputs      # the board has an fqbn
    assert steps[4].board_fields and "usb_ids" not in steps[4].board_fields


@pytest.mark.heavy
def test_mnist_through_every_step(tmp_path):
    """convert -> sketch -> check -> memory -> simulate on TinyMaix's own mnist_valid_q."""
    need(TREE, MNIST)

    inputs = _inputs(tmp_path, MNIST, _digits(tmp_path))
    inputs["tflite"] = MNIST
    folder = tmp_path / "nano33ble" / "tinymaix"
    steps = {s.id: s for s in _steps(tmp_path / "nano33ble")}
    done = {}
    _run(steps["convert"], folder, inputs, done)
    layers = json.loads((folder / "layers.json").read_text())
    assert [row["op"] for row in layers["layers"]] == ["CONV_2D", "CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED",
                                                      "SOFTMAX"]
    assert layers["tmdl_bytes"] == os.path.getsize(folder / "model.tmdl") == 2408
    assert layers["buffer_bytes"] == 1464 and layers["head"]["out_deq"] == 0     # int8 scores out

    _run(steps["sketch"], folder, inputs, done)
    src = folder / "tinymaix_model" / "src"
    assert "tm_run(&model" in (src / "model.c").read_text()
    assert "#define MODEL_WORKSPACE_SIZE 1464" in (src / "model.h").read_text()
    assert "__attribute__((aligned(8)))" in (src / "model_data.c").read_text()
    assert not (src / "model").exists()                                         # no TVM sources

    _run(steps["check"], folder, inputs, done)
    check = json.loads((folder / "hostcheck.json").read_text())
    # Not exact (its own kernels and rounding), but on real digits within one step and with tf.lite's decisions.
    assert check["inputs"] == 2 and check["same_decision"] == 2 and check["max_diff"] <= 1, check["verdict"]

    if not shutil.which("arm-none-eabi-gcc"):
        return
    _run(steps["memory"], folder, inputs, done)
    memory = json.loads((folder / "memory.json").read_text())
    assert memory["measured"] and memory["flash_bytes"] > memory["model_bytes"] == 2408
    assert memory["ram_bytes"] >= 1464 and len(memory["layers"]) == 6
    assert "FULLY_CONNECTED" in (folder / "memory.txt").read_text()

    need_arm()
    _run(steps["simulate"], folder, inputs, done)
    sim = json.loads((folder / "simulate.json").read_text())
    assert sim["arch"] == "TM_ARCH_ARM_SIMD" and sim["inferences"] == check["inputs"]
    assert sim["instructions_per_inference"] > 10_000 and sim["cycles_per_inference_estimate"] > 0
    assert sim["other_arch"]["instructions_per_inference"] > 0
    assert sim["same_decision"] == 2 and sim["max_diff"] <= 1 and sim["other_arch"]["max_diff"] <= 1


@pytest.mark.heavy
def test_residual_model_gets_the_buffer_its_add_keeps(tmp_path):
    """mnist_resnet_q (ADD): TinyMaix keeps one branch beyond the ping-pong buffer; the sketch's buffer is the
    model header's total (4,704 B), not the converter's printed "buffer size" (3,528 B), or tm_run overflows it."""
    need(TREE)

    model = os.path.join(TREE, "tools", "tflite", "mnist_resnet_q.tflite")
    inputs = _inputs(tmp_path, model, _digits(tmp_path))
    inputs["tflite"] = model
    folder = tmp_path / "nano33ble" / "tinymaix"
    steps = {s.id: s for s in _steps(tmp_path / "nano33ble")}
    done = {}
    for step in ("convert", "sketch", "check"):
        _run(steps[step], folder, inputs, done)
    layers = json.loads((folder / "layers.json").read_text())
    assert (layers["pingpong_bytes"], layers["keep_bytes"], layers["buffer_bytes"]) == (3528, 1176, 4704)
    assert "#define MODEL_WORKSPACE_SIZE 4704" in (folder / "tinymaix_model" / "src" / "model.h").read_text()
    check = json.loads((folder / "hostcheck.json").read_text())
    assert check["same_decision"] == 2, check["verdict"]


@pytest.mark.heavy
def test_scons_builds_three_backends_side_by_side(tmp_path):
    """`scons check memory simulate BACKEND=tvm,tflm,tinymaix`, as a user runs it: each backend's check, memory
    and simulate, and one table with a column per backend (flash, RAM, M4 instructions, largest difference)."""
    tflm_tree = os.path.join(os.path.dirname(SHARED_MODELS), "tflm-tree")
    need(TREE, MNIST, tflm_tree)
    need_arm()
    from helpers import run_scons

    proc = run_scons(tmp_path, "check", "memory", "simulate", BACKEND="tvm,tflm,tinymaix", TFLM_DIR=tflm_tree,
                     TINYMAIX_DIR=TREE, MODEL=MNIST, INPUTS=",".join(_digits(tmp_path)))
    board = tmp_path / "nano33ble"
    table = json.loads((board / "backends.json").read_text())
    assert table["backends"] == ["tvm", "tflm", "tinymaix"]
    rows = table["rows"]
    for row in ("flash_bytes", "ram_bytes", "m4_instructions_per_inference", "max_diff"):
        assert set(rows[row]) == {"tvm", "tflm", "tinymaix"}, rows
    assert rows["max_diff"]["tvm"] == 0 and rows["max_diff"]["tflm"] == 0 and rows["max_diff"]["tinymaix"] <= 1
    assert rows["m4_instructions_per_inference"]["tinymaix"] > rows["m4_instructions_per_inference"]["tvm"] > 0
    check = json.loads((board / "tinymaix" / "hostcheck.json").read_text())
    assert check["same_decision"] == 2
    assert "largest score difference vs tf.lite" in proc.stdout and "TINYMAIX Simulated (QEMU)" in proc.stdout


def test_compile_without_an_arduino_build_is_one_error(tmp_path):
    from helpers import run_scons

    proc = run_scons(tmp_path, "compile", check=False, BACKEND="tinymaix", TINYMAIX_DIR=TREE)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "no Arduino build" in errors[0], proc.stderr
    assert not (tmp_path / "nano33ble").exists()
