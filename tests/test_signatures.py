"""Nothing stale (issue 18): every stage's signature covers what its output depends on (file content, file
name, order, count, each variable), and nothing is recorded, cached or pushed when a stage did not really run
(-n, -q, a failed or interrupted stage). The seen cases, then a table-driven property test over every
registered stage (codegen/targets.py): change one thing, exactly the stages downstream of it rebuild, and the
outputs equal a clean build's."""
import filecmp
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, built_stages, run_scons, stage_lines

FAKE_CLI = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny full-int8 .tflite (8x8x3 uint8 -> 2 classes) and three 8x8 PNGs: a.png, b.png (a's bytes) and c.png."""
    import sys

    import keras

    sys.path.insert(0, os.path.dirname(__file__))
    from tflite_helpers import convert_int8, fit_briefly

    d = tmp_path_factory.mktemp("small")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    X = np.random.RandomState(0).randint(0, 256, (16, 8, 8, 3)).astype(np.float32)
    fitted = fit_briefly(model, X)
    (d / "m.tflite").write_bytes(convert_int8(fitted, X, "uint8", "uint8"))
    (d / "m2.tflite").write_bytes(convert_int8(fitted, X[::-1], "uint8", "uint8", rep=5))  # other scales
    for name, seed in (("a.png", 1), ("c.png", 2), ("d.png", 3)):
        Image.fromarray(np.random.RandomState(seed).randint(0, 256, (8, 8, 3)).astype(np.uint8)).save(d / name)
    shutil.copy(d / "a.png", d / "b.png")
    return d


def _json(path):
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------ the seen cases
def test_renamed_input_is_a_change(small, tmp_path):
    """Case 3: INPUTS=a.png then INPUTS=b.png with the same bytes was "up to date" and the sketch printed a.png."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    run_scons(build, "check", MODEL=model, INPUTS=str(small / "a.png"))
    proc = run_scons(build, "check", MODEL=model, INPUTS=str(small / "b.png"))
    assert "Embedding images" in built_stages(proc.stdout), proc.stdout
    out = build / "nano33ble"
    assert [i["title"] for i in _json(out / "expected.json")["images"]] == ["b.png"]
    assert "b.png" in (out / "images.c").read_text() and "a.png" not in (out / "images.c").read_text()
    assert [r["title"] for r in _json(out / "hostcheck.json")["images"]] == ["b.png"]


def test_dry_run_and_question_do_not_poison_the_next_build(small, tmp_path):
    """Case 2 (the check half): `scons -n check INPUTS=...` recorded the old outputs as built from the new
    inputs, and the next real build kept them ("kept ... its signature was never saved")."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    run_scons(build, "check", MODEL=model, INPUTS=str(small / "a.png"))
    new = str(small / "c.png")
    def records():
        folder = build / ".scons-finished"
        return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}

    before = records()
    for flag in ("-n", "-q"):
        proc = run_scons(build, flag, "check", check=False, MODEL=model, INPUTS=new)
        assert proc.returncode == (1 if flag == "-q" else 0), proc.stdout + proc.stderr
        assert records() == before, f"{flag} changed the records of finished targets"
    proc = run_scons(build, "check", MODEL=model, INPUTS=new)
    assert "kept `" not in proc.stdout, proc.stdout
    assert "Embedding images" in built_stages(proc.stdout)
    assert [r["title"] for r in _json(build / "nano33ble" / "hostcheck.json")["images"]] == ["c.png"]


def test_failed_stage_records_nothing(small, tmp_path):
    """A stage that failed wrote nothing the records (or a cache) could bring back."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    bad = tmp_path / "bad.png"
    bad.write_text("not a PNG")
    proc = run_scons(build, "images", check=False, MODEL=model, INPUTS=str(bad))
    assert proc.returncode != 0
    assert not any(n.endswith(".json") for n in os.listdir(build / ".scons-finished")) \
        if (build / ".scons-finished").exists() else True


@pytest.mark.heavy
def test_dry_run_before_retraining_does_not_keep_the_old_model(tmp_path):
    """Case 2 as filed: train EPOCHS=1, `scons -n train EPOCHS=2`, then `scons train EPOCHS=2` kept the 1-epoch
    model (train_history.json said 1 epoch)."""
    build = tmp_path / "b"
    small_run = {"SAMPLES": "50", "SIZE": "32"}
    run_scons(build, "train", EPOCHS="1", **small_run)
    run_scons(build, "-n", "train", EPOCHS="2", **small_run)
    proc = run_scons(build, "train", EPOCHS="2", **small_run)
    assert "kept `" not in proc.stdout and "Training MobileNetV1" in built_stages(proc.stdout), proc.stdout
    history = _json(build / "nano33ble" / "train_history.json")
    assert history["epochs"] == 2 and len(history["history"]["loss"]) == 2
