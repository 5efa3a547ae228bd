"""A model the user brings, through scons itself: MODEL= a .tflite (no training) or a Keras model (quantized
here), INPUTS= of every kind (.npy float/int8, .bin, images), LABELS=, REP_DATA=, ARCH=; every bad input is one
`error:` line, a non-zero exit and no half-written target; the MLPerf Tiny models run end to end."""
import collections
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import FakeBoard, built_stages, run_scons
from tflite_helpers import SHARED_MODELS, convert_int8, fit_briefly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMAGE_SHAPE = (24, 32, 3)          # non-square on purpose
TRAINING_STAGES = ("Generating synthetic", "Packing dataset", "Training", "Quantizing", "Evaluating")
CODEGEN_STAGES = ["Embedding images", "TFLite reference scores", "TVM codegen (standalone C, MLF)",
                  "Rendering sketch", "Host check (gcc build + run vs TFLite)"]


def _image_model(keras, batch_size):
    inp = keras.Input(IMAGE_SHAPE, batch_size=batch_size, name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small models a user could bring: an image classifier (int8 and uint8 .tflite, and as .keras with a
    dynamic batch, as users save them) and a non-image one with raw (non-softmax) scores."""
    import keras

    d = tmp_path_factory.mktemp("user_models")
    keras.utils.set_random_seed(0)
    rs = np.random.RandomState(0)
    X = rs.randint(0, 256, (32,) + IMAGE_SHAPE).astype(np.float32)
    fixed = fit_briefly(_image_model(keras, 1), X)
    (d / "image.tflite").write_bytes(convert_int8(fixed, X))
    (d / "image_u8.tflite").write_bytes(convert_int8(fixed, X, "uint8", "uint8"))
    dynamic = _image_model(keras, None)
    dynamic.set_weights(fixed.get_weights())
    dynamic.save(d / "image.keras")

    inp = keras.Input((10,), batch_size=1)
    out = keras.layers.Dense(4)(keras.layers.Dense(6, activation="relu")(inp))
    V = rs.uniform(-1, 1, (32, 10)).astype(np.float32)
    (d / "dense.tflite").write_bytes(convert_int8(fit_briefly(keras.Model(inp, out), V), V))
    return d


def _json(path):
    return json.loads(path.read_text())


def _errors(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def _input_quantization(tflite):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(tflite))
    scale, zp = interp.get_input_details()[0]["quantization"]
    return scale, zp


# ------------------------------------------------------------------------------------------------ MODEL=.tflite

@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_tflite_model_builds_check_without_training(models, tmp_path):
    model = tmp_path / "mine.tflite"
    shutil.copy(models / "image.tflite", model)
    build = tmp_path / "b"
    proc = run_scons(build, MODEL=str(model))                     # the default targets: memory, check
    stages = built_stages(proc.stdout)
    assert not [s for s in stages if s.startswith(TRAINING_STAGES)], stages
    assert sorted(stages) == sorted(CODEGEN_STAGES)
    out = build / "nano33ble"
    assert not (out / "model.tflite").exists() and not (out / "dataset.npz").exists()
    expected, check = _json(out / "expected.json"), _json(out / "hostcheck.json")
    assert expected["labels"] == ["class0", "class1", "class2"] and expected["softmax"]
    assert [e["title"] for e in expected["images"]] == ["input0", "input1"]       # seeded random inputs
    assert check["exact"] and [r["line"] for r in check["images"]] == [e["line"] for e in expected["images"]]
    assert expected["images"][0]["line"] in check["output"]
    assert built_stages(run_scons(build, MODEL=str(model)).stdout) == []
    assert run_scons(build, "-q", check=False, MODEL=str(model)).returncode == 0

    # The model is a source file: another model in its place rebuilds what depends on it, and trains nothing.
    shutil.copy(models / "image_u8.tflite", model)
    stages = built_stages(run_scons(build, MODEL=str(model)).stdout)
    assert sorted(stages) == sorted(CODEGEN_STAGES)
    assert _json(out / "images.json")["dtype"] == "uint8" and _json(out / "hostcheck.json")["exact"]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_inputs_of_every_kind_and_a_labels_file(models, tmp_path):
    from codegen.modelio.images import load_image

    tflite = models / "image.tflite"
    scale, zp = _input_quantization(tflite)
    count = int(np.prod(IMAGE_SHAPE))
    rs = np.random.RandomState(1)
    floats = rs.uniform(-10, 265, IMAGE_SHAPE)                           # float64 is fine too; clamped
    ints = rs.randint(-128, 128, count).astype(np.int8)                  # flat: only the count must match
    raw = rs.randint(-128, 128, count).astype(np.int8).tobytes()
    np.save(tmp_path / "float.npy", floats)
    np.save(tmp_path / "int8.npy", ints)
    (tmp_path / "raw.bin").write_bytes(raw)
    Image.fromarray(rs.randint(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\nno cat\n\nbird\n")                       # blank lines are skipped
    inputs = ",".join(str(tmp_path / n) for n in ("float.npy", "int8.npy", "raw.bin", "photo.png"))
    build = tmp_path / "b"
    run_scons(build, "check", MODEL=str(tflite), INPUTS=inputs, LABELS=str(labels))

    out = build / "nano33ble"
    embedded = _json(out / "images.json")
    from codegen.emit.bin2c import load_embedded

    got = load_embedded(str(out / "images.json"))[1]
    v = floats.astype(np.float64).reshape(-1) / scale
    want_float = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zp, -128, 127).astype(np.int8)
    pixels = load_image(str(tmp_path / "photo.png"), IMAGE_SHAPE[:2], 3).astype(np.float64) / scale
    want_png = np.clip(np.floor(pixels + 0.5) + zp, -128, 127).astype(np.int8)
    assert got == [want_float.tobytes(), ints.tobytes(), raw, want_png.tobytes()]
    assert embedded["labels"] == ["cat", "no cat", "bird"]
    assert "#define IMAGE_HEIGHT 24" in (out / "images.h").read_text()
    expected, check = _json(out / "expected.json"), _json(out / "hostcheck.json")
    assert [e["title"] for e in expected["images"]] == ["float.npy", "int8.npy", "raw.bin", "photo.png"]
    assert all(e["line"].startswith(f"{e['title']}: {e['top']} ") for e in expected["images"])
    assert check["exact"] and [r["line"] for r in check["images"]] == [e["line"] for e in expected["images"]]

    # IMAGES= is the former name of INPUTS=: the same build, nothing to redo.
    assert built_stages(run_scons(build, "check", MODEL=str(tflite), IMAGES=inputs, LABELS=str(labels)).stdout) == []
    # Another label text changes the printed lines, not the model code.
    labels.write_text("cat\ndog\nbird\n")
    stages = built_stages(run_scons(build, "check", MODEL=str(tflite), INPUTS=inputs, LABELS=str(labels)).stdout)
    assert sorted(stages) == sorted(set(CODEGEN_STAGES) - {"TVM codegen (standalone C, MLF)"})
    assert _json(out / "expected.json")["labels"] == ["cat", "dog", "bird"]


def _class_folders(root, classes, per_class=3, seed=2):
    rs = np.random.RandomState(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rs.randint(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return str(root)


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_tflite_model_with_data_takes_its_classes_and_heldout_images(models, tmp_path):
    data = _class_folders(tmp_path / "data", ("bird", "cat", "dog"))
    build = tmp_path / "b"
    stages = built_stages(run_scons(build, "check", MODEL=str(models / "image.tflite"), DATA=data).stdout)
    assert "Packing dataset" in stages and not [s for s in stages if s.startswith(("Training", "Quantizing"))]
    expected = _json(build / "nano33ble" / "expected.json")
    assert expected["labels"] == ["bird", "cat", "dog"]
    assert [e["title"] for e in expected["images"]] == ["bird", "cat", "dog"]      # one held-out image per class
    assert _json(build / "nano33ble" / "hostcheck.json")["exact"]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_non_image_model_prints_raw_scores(models, tmp_path):
    build = tmp_path / "b"
    run_scons(build, "check", MODEL=str(models / "dense.tflite"))
    expected = _json(build / "nano33ble" / "expected.json")
    assert not expected["softmax"] and len(expected["images"]) == 2
    for e in expected["images"]:
        top = e["scores"][e["argmax"]]
        assert e["line"] == f"{e['title']}: class{e['argmax']} {top} [{', '.join(map(str, e['scores']))}]"
    assert "IMAGE_HEIGHT" not in (build / "nano33ble" / "images.h").read_text()
    assert _json(build / "nano33ble" / "hostcheck.json")["exact"]


def test_quantize_values_rounds_half_away_from_zero_and_clamps():
    from codegen.modelio.quantio import pixels_to_input, quantize_values

    q = quantize_values(np.array([0.25, -0.25, 0.75, -0.75, 0.2, 100.0, -100.0]), "int8", 0.5, 3)
    assert q.tolist() == [4, 2, 5, 1, 3, 127, -128]          # like TFLite's QUANTIZE (std::round)
    pixels = np.array([0, 51, 255], np.uint8)
    assert pixels_to_input(pixels, "uint8", 1.0, 0).tolist() == [0, 51, 255]            # 0..255 models
    assert pixels_to_input(pixels, "int8", 1 / 255, -128).tolist() == [-128, -77, 127]  # 0..1 (MLPerf VWW)
    assert pixels_to_input(pixels, "int8", 1 / 127.5, 0).tolist() == [-128, -77, 127]  # -1..1 (MobileNetV2)


# ------------------------------------------------------------------------------------------------ bad input

def _write(path, data):
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return str(path)


def _npy(path, arr):
    np.save(path, arr)
    return str(path)


# (case id, make(tmp, models) -> (targets, variables), message part, stops before any stage)
BAD_INPUTS = [
    ("model-missing", lambda t, m: ([], {"MODEL": str(t / "nope.tflite")}), "does not exist", True),
    ("model-extension", lambda t, m: ([], {"MODEL": _write(t / "m.onnx", b"onnx")}), "unknown model type '.onnx'",
     True),
    ("model-not-tflite", lambda t, m: ([], {"MODEL": _write(t / "m.tflite", b"\0" * 64)}),
     "is not a TensorFlow Lite flatbuffer", True),
    ("model-not-keras", lambda t, m: ([], {"MODEL": _write(t / "m.keras", "text")}), "is not a readable Keras model",
     True),
    ("rep-data-with-tflite", lambda t, m: ([], {"MODEL": str(m / "image.tflite"),
                                                "REP_DATA": _npy(t / "r.npy", np.zeros((2, 10)))}),
     "already quantized", True),
    ("quant-with-model", lambda t, m: ([], {"MODEL": str(m / "image.tflite"), "QUANT": "float16"}), "QUANT=float16",
     True),
    ("inputs-missing", lambda t, m: ([], {"MODEL": str(m / "image.tflite"), "INPUTS": str(t / "no.npy")}),
     "does not exist", True),
    ("labels-missing", lambda t, m: ([], {"MODEL": str(m / "image.tflite"), "LABELS": str(t / "no.txt")}),
     "LABELS=", True),
    ("arch-unknown", lambda t, m: ([], {"ARCH": "resnet50"}), "ARCH='resnet50' is not supported", True),
    ("alpha-for-v2", lambda t, m: ([], {"ARCH": "mobilenet_v2", "ALPHA": "0.25"}),
     "ALPHA='0.25' is not supported for ARCH=mobilenet_v2; use one of: 0.35, 0.5, 0.75, 1.0, 1.3, 1.4", True),
    ("alpha-for-v3", lambda t, m: ([], {"ARCH": "mobilenet_v3_small", "ALPHA": "0.5"}),
     "use one of: 0.75, 1.0", True),
    ("depth-for-v2", lambda t, m: ([], {"ARCH": "mobilenet_v2", "DEPTH": "2"}), "DEPTH=2 cuts MobileNetV1", True),
    ("npy-size", lambda t, m: (["images"], {"MODEL": str(m / "image.tflite"),
                                            "INPUTS": _npy(t / "small.npy", np.zeros((3, 4), np.float32))}),
     "small.npy: 12 values (shape [3, 4]), but the model input [1, 24, 32, 3] takes 2304 int8 values", False),
    ("npy-dtype", lambda t, m: (["images"], {"MODEL": str(m / "image.tflite"),
                                             "INPUTS": _npy(t / "u8.npy", np.zeros(2304, np.uint8))}),
     "u8.npy: uint8 values, but the model input [1, 24, 32, 3] takes 2304 int8 values", False),
    ("bin-size", lambda t, m: (["images"], {"MODEL": str(m / "image.tflite"), "INPUTS": _write(t / "x.bin", b"12")}),
     "x.bin: 2 bytes, but the model input [1, 24, 32, 3] takes 2304 int8 values", False),
    ("image-for-vector-model", lambda t, m: (["images"], {"MODEL": str(m / "dense.tflite"),
                                                          "INPUTS": _write(t / "p.png", b"")}),
     "p.png: an image, but the model input [1, 10] takes 10 int8 values and is not an image", False),
    ("data-classes-count", lambda t, m: (["images"], {"MODEL": str(m / "image.tflite"),
                                                      "DATA": _class_folders(t / "data", ("a", "b"))}),
     "/data: 2 classes (a, b), but the model has 3 outputs; give LABELS=<file> with 3 labels", False),
    ("labels-count", lambda t, m: (["images"], {"MODEL": str(m / "image.tflite"),
                                                "LABELS": _write(t / "l.txt", "a\nb\n")}),
     "l.txt: 2 labels, but the model has 3 outputs", False),
]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
@pytest.mark.parametrize("case,make,needle,early", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_clear_error(models, tmp_path, case, make, needle, early):
    targets, variables = make(tmp_path, models)
    build = tmp_path / "b"
    proc = run_scons(build, *targets, check=False, **variables)
    errors = _errors(proc)
    assert proc.returncode != 0 and len(errors) == 1 and needle in errors[0], (proc.stdout[-2000:], proc.stderr)
    assert "Traceback" not in proc.stderr
    if early:
        assert proc.returncode == 2 and not build.exists()       # stopped before any stage
    else:
        assert not (build / "nano33ble" / "images.json").exists()


def test_board_defaults_for_v1_do_not_stop_another_arch():
    from codegen import boards
    from codegen import config

    cfg = config.parse({"ARCH": "mobilenet_v2"}, boards.get("mega"))     # the Mega's model_defaults say DEPTH=2
    assert cfg["depth"] is None and cfg["alpha"] == 0.35 and cfg["size"] == 32
    assert config.parse({})["alpha"] == 0.25 and config.parse({"ARCH": "mobilenet_v3_small"})["alpha"] == 0.75


def test_help_lists_the_new_variables(tmp_path):
    proc = run_scons(tmp_path / "b", "-h")
    for name in ("MODEL", "INPUTS", "LABELS", "REP_DATA", "ARCH"):
        assert f"\n  {name} " in proc.stdout, name


# ------------------------------------------------------------------------------------------------ MODEL=.keras

@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_keras_model_is_quantized_on_data_and_labelled_by_it(models, tmp_path):
    data = _class_folders(tmp_path / "data", ("bird", "cat", "dog"), per_class=4)
    build = tmp_path / "b"
    variables = {"MODEL": str(models / "image.keras"), "DATA": data}
    stages = built_stages(run_scons(build, "check", **variables).stdout)
    assert "Packing dataset" in stages and "Quantizing (TFLite PTQ)" in stages
    assert not [s for s in stages if s.startswith(("Training", "Generating synthetic", "Evaluating"))]
    out = build / "nano33ble"
    from codegen import frontend

    model = frontend.load(str(out / "model.tflite"))        # the dynamic batch of the .keras traced at 1
    assert model.inputs[0].shape_signature == (1,) + IMAGE_SHAPE
    expected = _json(out / "expected.json")
    assert expected["labels"] == ["bird", "cat", "dog"]
    assert [e["title"] for e in expected["images"]] == ["bird", "cat", "dog"]     # one held-out image per class
    assert _json(out / "hostcheck.json")["exact"]
    assert run_scons(build, "check", "-q", check=False, **variables).returncode == 0


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_keras_model_calibration_sources(models, tmp_path):
    build = tmp_path / "b"
    keras_model = str(models / "image.keras")
    stages = built_stages(run_scons(build, "quantize", MODEL=keras_model).stdout)
    assert stages == ["Generating synthetic car/not-car images", "Packing dataset", "Quantizing (TFLite PTQ)"]
    rep = np.random.RandomState(3).uniform(0, 255, (8, int(np.prod(IMAGE_SHAPE)))).astype(np.float32)   # (N, flat)
    np.save(tmp_path / "rep.npy", rep)
    stages = built_stages(run_scons(build, "quantize", MODEL=keras_model, REP_DATA=str(tmp_path / "rep.npy")).stdout)
    assert stages == ["Quantizing (TFLite PTQ)"]
    np.save(tmp_path / "bad.npy", rep[:, :100])
    proc = run_scons(build, "quantize", check=False, MODEL=keras_model, REP_DATA=str(tmp_path / "bad.npy"))
    errors = _errors(proc)
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr
    assert "bad.npy: float32 array of shape [8, 100] does not fit the model input [1, 24, 32, 3]" in errors[0]
    assert not (build / "nano33ble" / "model.tflite").exists()


# ------------------------------------------------------------------------------------------------ MLPerf Tiny

def _shared_model(name):
    path = os.path.join(SHARED_MODELS, name)
    if not os.path.isfile(path):
        pytest.skip(f"{SHARED_MODELS} (the MLPerf Tiny models, see its README.md) is not here")
    return path


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_mlperf_keyword_spotting_with_npy_inputs(tmp_path):
    model = _shared_model("kws_ref_model.tflite")
    scale, zp = _input_quantization(model)
    lo, hi = scale * (-128 - zp), scale * (127 - zp)
    rs = np.random.RandomState(4)
    files = []
    for name in ("yes", "no"):                 # stand-ins for MFCC features, in the input's float range
        np.save(tmp_path / f"{name}.npy", rs.uniform(lo, hi, (49, 10, 1)).astype(np.float32))
        files.append(str(tmp_path / f"{name}.npy"))
    # an image for a 1-channel, non-square input (49 x 10): converted to grayscale and stretched
    Image.fromarray(rs.randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "spectrogram.png")
    files.append(str(tmp_path / "spectrogram.png"))
    build = tmp_path / "b"
    run_scons(build, "check", MODEL=model, INPUTS=",".join(files))
    expected = _json(build / "nano33ble" / "expected.json")
    assert [e["title"] for e in expected["images"]] == ["yes.npy", "no.npy", "spectrogram.png"]
    assert len(expected["labels"]) == 12
    assert expected["softmax"] and all(e["line"].split()[2].endswith("%") for e in expected["images"])
    assert _json(build / "nano33ble" / "hostcheck.json")["exact"]
    from codegen.runners import qemu

    if qemu.toolchain_available():      # the same lines from the Cortex-M4 harness
        run_scons(build, "simulate", MODEL=model, INPUTS=",".join(files))
        sim = _json(build / "nano33ble" / "simulate.json")
        assert sim["output"].splitlines() == [e["line"] for e in expected["images"]]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_mlperf_visual_wake_words_with_pngs_and_labels(tmp_path):
    model = _shared_model("vww_96_int8.tflite")
    rs = np.random.RandomState(5)
    Image.fromarray(rs.randint(0, 256, (120, 160, 3), dtype=np.uint8)).save(tmp_path / "person.png")
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "labels.txt").write_text("non_person\nperson\n")   # the MLPerf training folders, sorted
    build = tmp_path / "b"
    run_scons(build, "check", MODEL=model, INPUTS=f"{tmp_path / 'person.png'},{tmp_path / 'empty.png'}",
              LABELS=str(tmp_path / "labels.txt"))
    out = build / "nano33ble"
    # The input is quantized for 0..1 (scale 1/255, zero point -128): pixels are normalized, not clamped.
    from codegen.emit.bin2c import load_embedded

    empty = np.frombuffer(load_embedded(str(out / "images.json"))[1][1], np.int8)
    assert set(empty.tolist()) == {200 - 128}
    expected = _json(out / "expected.json")
    assert expected["labels"] == ["non_person", "person"]
    assert [e["line"].split(":")[0] for e in expected["images"]] == ["person.png", "empty.png"]
    assert _json(out / "hostcheck.json")["exact"]
    from codegen.runners import qemu

    if qemu.toolchain_available():      # the Cortex-M4F in QEMU prints the same lines
        run_scons(build, "simulate", MODEL=model, INPUTS=f"{tmp_path / 'person.png'},{tmp_path / 'empty.png'}",
                  LABELS=str(tmp_path / "labels.txt"))
        sim = _json(out / "simulate.json")
        assert sim["output"].splitlines() == [e["line"] for e in expected["images"]]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
@pytest.mark.parametrize("name", ["pretrainedResnet_quant.tflite", "ad01_int8.tflite"])
def test_mlperf_model_with_default_inputs(tmp_path, name):
    """ResNet-8 (CIFAR-10) and the FC autoencoder (640 values in, 640 out, no softmax) through MODEL= alone."""
    model = _shared_model(name)
    build = tmp_path / "b"
    run_scons(build, "check", MODEL=model)
    expected = _json(build / "nano33ble" / "expected.json")
    assert [e["title"] for e in expected["images"]] == ["input0", "input1"]
    assert _json(build / "nano33ble" / "hostcheck.json")["exact"]


# ------------------------------------------------------------------------------------------------ ARCH=

def _ops(tflite):
    from codegen.frontend import reader

    with open(tflite, "rb") as f:
        model = reader._parse(str(tflite), f.read())      # _parse, not load: load rejects ops not yet lowered
    return model, collections.Counter(op.type for op in model.ops)


@pytest.mark.heavy
@pytest.mark.parametrize("arch,title,alpha,needs,targets", [
    ("mobilenet_v2", "MobileNetV2", "0.35", {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL"}, ("check", "simulate")),
    ("mobilenet_v3_small", "MobileNetV3Small", "0.75", {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MUL", "MEAN"},
     ("check",)),
])
def test_arch_trains_quantizes_and_runs_exactly(tmp_path, arch, title, alpha, needs, targets):
    """ARCH= trains the Keras application with a static batch; its int8 model goes through the host check
    (and for MobileNetV2 the Cortex-M4 in QEMU) with TFLite's scores."""
    from codegen.runners import qemu

    build = tmp_path / "b"
    stages = built_stages(run_scons(build, "quantize", ARCH=arch, ALPHA=alpha).stdout)
    assert f"Training {title}" in stages and "Quantizing (TFLite PTQ)" in stages
    model, ops = _ops(build / "nano33ble" / "model.tflite")
    print(f"\n{arch} alpha {alpha}: {dict(sorted(ops.items()))}")
    assert needs <= set(ops) and ops["SOFTMAX"] == 1 and ops["FULLY_CONNECTED"] == 1
    assert all(-1 not in t.shape_signature for t in model.tensors)          # keras.Input(batch_size=1)
    assert model.inputs[0].shape == (1, 32, 32, 3) and model.inputs[0].dtype == "uint8"
    history = _json(build / "nano33ble" / "train_history.json")
    assert history["arch"] == arch and history["alpha"] == float(alpha)

    if "simulate" in targets and not qemu.toolchain_available():
        targets = ("check",)
    stages = built_stages(run_scons(build, *targets, ARCH=arch, ALPHA=alpha).stdout)
    assert not any(s.startswith("Training") for s in stages)                # the model from above is reused
    assert _json(build / "nano33ble" / "hostcheck.json")["exact"]
    if "simulate" in targets:
        expected = _json(build / "nano33ble" / "expected.json")
        sim = _json(build / "nano33ble" / "simulate.json")
        assert sim["output"].splitlines() == [e["line"] for e in expected["images"]]


@pytest.mark.heavy      # full scons runs on user models: tens of seconds each
def test_user_model_compiles_uploads_and_exports(tmp_path):
    """MODEL= goes through the device stages unchanged: arduino-cli (the recording stand-in) compiles and
    uploads its sketch, and the C library export holds the model."""
    model = _shared_model("kws_ref_model.tflite")
    build = tmp_path / "b"
    log = tmp_path / "calls.log"
    cli = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")
    board = FakeBoard()                 # runs something else at first
    try:
        ports = json.dumps([[board.port, "0x2341", "0x805A", "arduino:mbed_nano:nano33ble"]])
        env = {"FAKE_ARDUINO_LOG": str(log), "FAKE_ARDUINO_PORTS": ports}
        run_scons(build, "upload", "export", env=env, ARDUINO_CLI=cli, MODEL=model)
        calls = [" ".join(json.loads(line)[:2]) for line in log.read_text().splitlines()]
        assert calls == ["core list", "compile --fqbn", "board list", "upload --fqbn"]
        assert (build / "nano33ble" / "c_library" / "include" / "tvmgen_default.h").is_file()
        log.write_text("")
        board.runs = _json(build / "nano33ble" / "firmware" / "compile.json")["build_id"]   # it runs this build now
        proc = run_scons(build, "upload", "export", env=env, ARDUINO_CLI=cli, MODEL=model, PORT=board.port)
        assert log.read_text() == "" and "upload skipped" in proc.stdout   # the board reports this build: nothing to do
    finally:
        board.close()
