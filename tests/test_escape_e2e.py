"""Issue 19, case 1, through scons itself: hostile labels (LABELS=) and input file names reach the generated
sketch only as string literals: the host check builds, prints each text exactly as given, and no code hidden in
them runs. Heavy: full scons runs on a tiny model."""
import json
import os
import shutil

import numpy as np
import pytest

from helpers import run_scons
from hostile import injection

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """A tiny int8 model (10 values in, 3 softmax scores out) whose top class is the index of the largest of
    the first three inputs: each test input can pick the label it prints. Cheap to build and check."""
    import keras

    from tflite_helpers import convert_int8

    keras.utils.set_random_seed(0)
    inp = keras.Input((10,), batch_size=1)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inp, dense(inp))
    kernel = np.zeros((10, 3), np.float32)
    kernel[[0, 1, 2], [0, 1, 2]] = 5.0
    dense.set_weights([kernel, np.zeros(3, np.float32)])
    V = np.random.RandomState(0).uniform(-1, 1, (32, 10)).astype(np.float32)
    path = tmp_path_factory.mktemp("escape_model") / "dense.tflite"
    path.write_bytes(convert_int8(model, V))
    return path


def test_hostile_labels_and_input_names_are_printed_not_run(dense_model, tmp_path):
    from codegen.runners.hostcheck import parse_results

    marker = tmp_path / "PWNED"
    labels = [injection(marker),
              'q"uote \\ back??/slash %n%s%x \\\\ #include <stdlib.h>',
              "\ufeffbom and rtl \u202e and $(touch " + str(marker) + ")"]
    (tmp_path / "labels.txt").write_text("".join(label + "\n" for label in labels), encoding="utf-8")
    inputs = []
    for k, name in enumerate(('a"b\\c??=d??!%n.bin', "e $(touch x) `id` ;.bin", "f \u2028 g.bin")):
        raw = np.full(10, -128, np.int8)
        raw[k] = 127                    # input k: label k is the top one
        (tmp_path / name).write_bytes(raw.tobytes())
        inputs.append(str(tmp_path / name))
    # The model's file name goes into a comment of every generated C file.
    model = tmp_path / 'm"o\\d??=%n $(touch x) \u2028.tflite'
    model.write_bytes(dense_model.read_bytes())
    build = tmp_path / "b"
    proc = run_scons(build, "check", check=False, MODEL=str(model), LABELS=str(tmp_path / "labels.txt"),
                     INPUTS=",".join(inputs))
    assert not marker.exists(), "code in a label ran during the build"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = json.loads((build / "nano33ble" / "hostcheck.json").read_text())
    printed = parse_results(check["output"])
    images = json.loads((build / "nano33ble" / "images.json").read_text())
    assert [r.title for r in printed] == [os.path.basename(p).replace("\u2028", "?") for p in inputs]
    # Input k prints label k, character for character (U+FEFF inside a line stays: only a file's leading BOM
    # is not text), and every line equals the reference's byte for byte.
    assert images["labels"] == labels
    assert [r.label for r in printed] == labels
    assert check["exact"]

    # The Cortex-M4 harness (codegen/runners/simulate.py) writes the same labels and names into its own C.
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        proc = run_scons(build, "simulate", check=False, MODEL=str(model), LABELS=str(tmp_path / "labels.txt"),
                         INPUTS=",".join(inputs))
        assert not marker.exists()
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        sim = json.loads((build / "nano33ble" / "simulate.json").read_text())
        assert sim["exact"] is True, sim          # every printed line equal to the reference, titles too
