"""Models whose inputs and outputs are not one int8/uint8 tensor each (issue 21): float32 outputs after a final
DEQUANTIZE and float32 inputs the model quantizes itself (ST model zoo's standard export), through every stage of
`scons check`: each float printed exactly (hex of its IEEE bits) and compared bit for bit with tf.lite; the
boundary QUANTIZE equals tf.lite's on random, tie and edge floats (huge, inf, NaN)."""
import json
import os
import struct

import numpy as np
import pytest

from helpers import run_scons
from tflite_helpers import SHARED_MODELS, convert_int8, fit_briefly

from codegen import protocol


def _bits(f):
    return struct.unpack("<I", struct.pack("<f", f))[0]


# ------------------------------------------------------------------------------------------------ the protocol
def test_float_keys_order_as_floats_and_give_the_bits_back():
    rs = np.random.RandomState(0)
    vals = np.concatenate([(rs.randn(200) * 10.0 ** rs.randint(-40, 38, 200)).astype(np.float32),
                           np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38], np.float32)])
    bits = vals.view(np.uint32)
    keys = [protocol.float_key(b) for b in bits]
    assert [protocol.key_bits(k) for k in keys] == [int(b) for b in bits]
    order = sorted(range(len(vals)), key=lambda i: keys[i])
    assert all(vals[a] <= vals[b] for a, b in zip(order, order[1:]))
    assert protocol.float_key(_bits(-0.0)) == -1 and protocol.float_key(_bits(0.0)) == 0


def test_float_confidence_is_the_rounded_probability():
    rs = np.random.RandomState(1)
    for p in list(rs.uniform(0, 1, 500).astype(np.float32)) + [np.float32(v) for v in (0.0, 1.0, 0.0005, 0.9995)]:
        want = int(np.floor(float(p) * 1000 + 0.5))        # exact in double: p has 24 bits, 1000 ten
        assert protocol.float_confidence_text(protocol.float_key(_bits(p))) == f"{want // 10}.{want % 10}%"


def test_a_float_result_line_round_trips():
    keys = [protocol.float_key(_bits(v)) for v in (0.25, -0.0, 0.75)]
    line = protocol.result_line("x", keys, ["a", "b", "c"], {"dtype": "float32", "softmax": True})
    assert line == "x: c 75.0% [0x3e800000, 0x80000000, 0x3f400000]"
    (got,) = protocol.parse_results(line + " 1.000 ms\n")
    assert got.scores == keys and got.line == line and got.confidence == "75.0%"
    line = protocol.result_line("y", keys, ["a", "b", "c"], {"dtype": "float32", "softmax": False})
    assert line == "y: c 0x3f400000 [0x3e800000, 0x80000000, 0x3f400000]"
    assert protocol.parse_results(line)[0].scores == keys


# ------------------------------------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    """A small accelerometer-like classifier as ST exports it: float32 in through QUANTIZE, softmax, float32 out
    through DEQUANTIZE; and the same with int8 input."""
    import keras

    d = tmp_path_factory.mktemp("float_io")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 3, 1), batch_size=1)
    x = keras.layers.Conv2D(4, (3, 1), activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    m = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    X = np.random.RandomState(0).randn(32, 8, 3, 1).astype(np.float32) * 2
    m = fit_briefly(m, X)
    (d / "float_in_out.tflite").write_bytes(convert_int8(m, X, "float32", "float32"))
    (d / "int8_in_float_out.tflite").write_bytes(convert_int8(m, X, "int8", "float32"))
    return d


def test_boundary_quantize_equals_tflite_on_random_tie_and_edge_floats(float_models, tmp_path):
    from codegen.runners import exactness
    from codegen.emit import mlf
    from codegen.frontend import load

    path = str(float_models / "float_in_out.tflite")
    model = load(path)
    q = next(op for op in model.ops if op.type == "QUANTIZE")
    s = float(model.tensors[q.outputs[0]].scale[0])
    f32 = np.float32
    edge = [0.0, -0.0, s * 0.5, -s * 0.5, s * 1.5, -s * 2.5, 127.5 * s, -128.5 * s, 1e10, -1e10, 3e38, -3e38,
            np.inf, -np.inf, np.nan, 1e-45, f32(2 ** 31) * f32(s), f32(-2 ** 31) * f32(s), f32(2 ** 31 - 128) * f32(s)]
    rs = np.random.RandomState(0)
    k = np.arange(24, dtype=np.float32) - 12
    X = np.concatenate([rs.randn(4, 8, 3, 1).astype(np.float32) * 3,
                        np.resize(np.array(edge, np.float32), 24).reshape(1, 8, 3, 1),
                        ((k + 0.5) * f32(s)).reshape(1, 8, 3, 1).astype(np.float32)])
    tar = str(tmp_path / "m.tar")
    meta = mlf.build_mlf(path, tar, model_name="m")
    assert meta["inputs"][0]["dtype"] == "float32" and meta["outputs"][0]["dtype"] == "float32"
    rep = exactness.compare(path, tar, X, str(tmp_path))
    assert not rep.mismatches, rep.mismatches
    assert rep.outputs_equal and (0, "QUANTIZE") in rep.checked_ops


@pytest.mark.parametrize("name", ["float_in_out", "int8_in_float_out"])
def test_float_io_model_passes_scons_check_bit_for_bit(float_models, tmp_path, name):
    model = float_models / f"{name}.tflite"
    inputs = []
    if name == "float_in_out":          # a .npy of floats is the input as it is, no quantization by the build
        x = np.random.RandomState(3).randn(1, 8, 3, 1).astype(np.float32)
        np.save(tmp_path / "window.npy", x)
        inputs = {"INPUTS": str(tmp_path / "window.npy")}
    proc = run_scons(tmp_path / "b", "check", MODEL=str(model), **(inputs or {}))
    assert "scores match TFLite byte for byte" in proc.stdout
    board = tmp_path / "b" / "nano33ble"
    expected = json.loads((board / "expected.json").read_text())
    lines = [e["line"] for e in expected["images"]]
    assert all("% [0x" in line for line in lines), lines                 # softmax confidence, hex floats
    for e in expected["images"]:
        assert [protocol.float_key(_bits(v)) for v in e["values"]] == e["scores"]
    if inputs:
        images = json.loads((board / "images.json").read_text())
        import base64
        assert base64.b64decode(images["images"][0]["data"]) == x.tobytes()


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["st_stmnist_v1_emnist_int8", "st_mobilenet_v2_0.35_128_plantvillage_int8",
                                  "st_miniresnet_1stacks_64x50_esc10_int8", "st_fdmobilenet_0.25_128_flowers_int8",
                                  "st_ign_wl_48_mobility_int8", "st_gmp_wl_48_mobility_int8",
                                  "st_resnet_v1_32_32_cifar100_int8"])
def test_shared_float_io_models_pass_check(name, tmp_path):
    path = os.path.join(SHARED_MODELS, name + ".tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)" % path)
    proc = run_scons(tmp_path, "check", MODEL=path)
    assert "scores match TFLite byte for byte" in proc.stdout
