"""Issue 19, case 1, through scons itself: hostile labels (LABELS=) and input file names reach the generated
sketch only as string literals: the host check builds, prints each text exactly as given, and no code hidden in
them runs. Heavy: full scons runs on a tiny model."""
import json
import os

import numpy as np
import pytest

from conftest import run_scons
from hostile import injection

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """A tiny non-image int8 model (10 values in, 3 softmax scores out): cheap to build and check."""
    import keras

    from tflite_helpers import convert_int8, fit_briefly

    keras.utils.set_random_seed(0)
    inp = keras.Input((10,), batch_size=1)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(6, activation="relu")(inp))
    V = np.random.RandomState(0).uniform(-1, 1, (32, 10)).astype(np.float32)
    path = tmp_path_factory.mktemp("escape_model") / "dense.tflite"
    path.write_bytes(convert_int8(fit_briefly(keras.Model(inp, out), V), V))
    return path


def test_hostile_labels_and_input_names_are_printed_not_run(dense_model, tmp_path):
    from codegen.runners.hostcheck import parse_results

    marker = tmp_path / "PWNED"
    labels = [injection(marker),
              'q"uote \\ back??/slash %n%s%x \\\\ #include <stdlib.h>',
              "\ufeffbom and rtl \u202e and $(touch " + str(marker) + ")"]
    (tmp_path / "labels.txt").write_text("".join(label + "\n" for label in labels), encoding="utf-8")
    inputs = []
    for name in ('a"b\\c??=d??!%n.bin', "e $(touch x) `id` ;.bin", "f \u2028 g.bin"):
        (tmp_path / name).write_bytes(np.random.RandomState(len(inputs)).randint(0, 256, 10, np.uint8).tobytes())
        inputs.append(str(tmp_path / name))
    build = tmp_path / "b"
    proc = run_scons(build, "check", check=False, MODEL=str(dense_model), LABELS=str(tmp_path / "labels.txt"),
                     INPUTS=",".join(inputs))
    assert not marker.exists(), "code in a label ran during the build"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = json.loads((build / "nano33ble" / "hostcheck.json").read_text())
    printed = parse_results(check["output"])
    images = json.loads((build / "nano33ble" / "images.json").read_text())
    assert [r.title for r in printed] == [os.path.basename(p).replace("\u2028", "?") for p in inputs]
    # Each printed label is one of the given ones, character for character (the BOM-less third one: a BOM
    # belongs to the file, not to a label; U+FEFF inside a line stays).
    assert images["labels"] == labels
    assert {r.label for r in printed} <= set(labels)
    assert check["exact"]
