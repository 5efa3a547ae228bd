"""Models whose inputs and outputs are not one int8/uint8 tensor each (issue 21): float32 outputs after a final
DEQUANTIZE and float32 inputs the model quantizes itself (ST model zoo's standard export), through every stage of
`scons check`: each float printed exactly (hex of its IEEE bits) and compared bit for bit with tf.lite; the
boundary QUANTIZE equals tf.lite's on random, tie and edge floats (huge, inf, NaN)."""
import json
import re
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
    import tarfile
    with tarfile.open(tar) as t:        # the one-buffer API as always, and the typed one with float pointers
        header = t.extractfile("codegen/host/include/tvmgen_m.h").read().decode()
    assert "int32_t tvmgen_m_run(const uint8_t* input, uint8_t* output);" in header
    # (the members are named after the tensors, whose Keras names count the tensors this process made before)
    assert re.search(r"\n  const float\* serving_default_keras_tensor\w*;\n", header), header
    assert re.search(r"\n  float\* statefulpartitionedcall\w*;\n", header) and "int32_t tvmgen_m_invoke(" in header
    rep = exactness.compare(path, tar, X, str(tmp_path))
    assert not rep.mismatches, rep.mismatches
    assert rep.outputs_equal and (0, "QUANTIZE") in rep.checked_ops


@pytest.mark.heavy      # a scons check each; the fast loop keeps the two-input one below
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


# ------------------------------------------------------------------------------------------------ several I/O
def _keep_output_int8(k):
    """An edit that drops the DEQUANTIZE making output k: that output becomes its int8 tensor (mixed output types)."""
    def fn(model):
        from tensorflow.lite.python import schema_py_generated as fb
        g = model.subgraphs[0]
        out = g.outputs[k]
        for i, op in enumerate(g.operators):
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.DEQUANTIZE \
                    and list(op.outputs) == [out]:
                g.outputs[k] = op.inputs[0]
                del g.operators[i]
                return
        raise AssertionError("no DEQUANTIZE makes output %d" % k)
    return fn


@pytest.fixture(scope="module")
def two_in_three_out(tmp_path_factory):
    """Two float32 inputs (each through the model's own QUANTIZE) and three outputs: a 3-class softmax (float32),
    40 values (float32: printed summarized) and 2 values left int8."""
    import keras
    import tensorflow as tf
    from codegen.fuzz import edit_flatbuffer

    d = tmp_path_factory.mktemp("multi_io")
    keras.utils.set_random_seed(0)
    a = keras.Input((8, 4), batch_size=1, name="accel")
    b = keras.Input((6,), batch_size=1, name="meta")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([keras.layers.Flatten()(a), b]))
    m = keras.Model([a, b], [keras.layers.Dense(3, activation="softmax")(h), keras.layers.Dense(40)(h),
                             keras.layers.Dense(2)(h)])
    rs = np.random.RandomState(0)
    A, B = rs.randn(32, 8, 4).astype(np.float32), rs.randn(32, 6).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([A[i:i + 1], B[i:i + 1]] for i in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.float32
    conv.inference_output_type = tf.float32
    buf = conv.convert()
    from codegen.modelio.quantio import model_io
    (d / "all_float.tflite").write_bytes(buf)
    short = [k for k, t in enumerate(model_io(str(d / "all_float.tflite"))["outputs"]) if t["shape"] == [1, 2]][0]
    (d / "two_three.tflite").write_bytes(edit_flatbuffer(buf, _keep_output_int8(short)))
    return d / "two_three.tflite"


def test_two_inputs_three_mixed_outputs_pass_scons_check(two_in_three_out, tmp_path):
    from codegen.modelio.quantio import model_io

    io = model_io(str(two_in_three_out))
    assert [t["dtype"] for t in io["inputs"]] == ["float32", "float32"]
    assert sorted(t["dtype"] for t in io["outputs"]) == ["float32", "float32", "int8"]
    # a test case: one .npz, one array keyed by an input's name, the other by its place
    rs = np.random.RandomState(5)
    arrays = {io["inputs"][0]["name"]: rs.randn(1, 8, 4).astype(np.float32),
              "arr_1": rs.randn(1, 6).astype(np.float32)}
    np.savez(tmp_path / "case.npz", **arrays)
    proc = run_scons(tmp_path / "b", "check", MODEL=str(two_in_three_out), INPUTS=str(tmp_path / "case.npz"))
    assert "scores match TFLite byte for byte" in proc.stdout
    board = tmp_path / "b" / "nano33ble"
    expected = json.loads((board / "expected.json").read_text())
    lines = [e["line"] for e in expected["images"]]
    assert len(lines) == 3 and [line.split(":")[0] for line in lines] == ["case.npz #0", "case.npz #1", "case.npz #2"]
    assert sum(": top5 [" in line and " fnv1a 0x" in line for line in lines) == 1          # the 40 values
    assert sum("% [0x" in line for line in lines) == 1          # the float softmax: label, confidence, values
    assert sum(": values [" in line and "0x" not in line for line in lines) == 1  # the int8 pair
    # the typed API next to the one-buffer one
    import tarfile
    with tarfile.open(board / "model_mlf.tar") as tar:
        text = tar.extractfile("codegen/host/include/tvmgen_default.h").read().decode()
    assert "struct tvmgen_default_inputs {" in text and "const float* serving_default_accel_0;" in text
    assert "int32_t tvmgen_default_invoke(const struct tvmgen_default_inputs* inputs" in text
    assert "int32_t tvmgen_default_run(const uint8_t* input, uint8_t* output);" in text
    # and the sketch's (so the Arduino library's) model.h brings it in: every tensor's macros and invoke()
    model_h = (board / "tvm_model" / "src" / "model.h").read_text()
    assert '#include "model/tvmgen_default.h"' in model_h


def test_several_inputs_need_one_npz_per_case(two_in_three_out, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 4), np.float32))
    proc = run_scons(tmp_path / "b", "check", check=False, MODEL=str(two_in_three_out), INPUTS=str(tmp_path / "x.npy"))
    assert proc.returncode != 0
    assert "give each test case as one .npz with one array per input" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_output_lines_round_trip():
    keys = [protocol.float_key(_bits(float(v))) for v in np.linspace(-2, 2, 40).astype(np.float32)]
    data = np.linspace(-2, 2, 40).astype(np.float32).tobytes()
    line, scores = protocol.output_line("x #1", keys, "float32", data)
    assert line.startswith("x #1: top5 [39=0x40000000, 38=") and line.endswith(" fnv1a 0x%08x" % protocol.fnv1a(data))
    (got,) = protocol.parse_results(line + " 0.123 ms")
    assert got.title == "x #1" and got.scores == scores and got.line == line
    line, scores = protocol.output_line("y #0", [-3, 4], "int8", b"\xfd\x04")
    assert line == "y #0: values [-3, 4]"
    assert protocol.parse_results(line)[0].scores == [-3, 4]


# ------------------------------------------------------------------------------------------------ int16 I/O
@pytest.fixture(scope="module")
def int16_models(tmp_path_factory):
    """16x8 models that need no 16x8 arithmetic kernel: a RESHAPE of an int16 input to an int16 output, and a
    float input quantized to int16 by the model (QUANTIZE) then RESHAPEd."""
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("int16_io")
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 4), batch_size=1)
    m = keras.Model(inp, keras.layers.Reshape((24,))(inp))
    X = np.random.RandomState(0).randn(16, 6, 4).astype(np.float32)
    for name, in_type, out_type in (("reshape16", tf.int16, tf.int16), ("float_to16", tf.float32, tf.int16)):
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([X[i:i + 1]] for i in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        conv.inference_input_type, conv.inference_output_type = in_type, out_type
        (d / f"{name}.tflite").write_bytes(conv.convert())
    return d


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["reshape16", "float_to16"])
def test_int16_io_passes_scons_check(int16_models, tmp_path, name):
    from codegen.modelio.quantio import model_io

    path = int16_models / f"{name}.tflite"
    io = model_io(str(path))
    assert io["output"]["dtype"] == "int16"
    proc = run_scons(tmp_path / "b", "check", MODEL=str(path))
    assert "scores match TFLite byte for byte" in proc.stdout
    expected = json.loads((tmp_path / "b" / "nano33ble" / "expected.json").read_text())
    assert any(abs(v) > 255 for e in expected["images"] for v in e["scores"])       # really 16-bit values


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["tflm_seanet_conv0_int16x8", "tflm_seanet_leaky_relu0_int16x8",
                                  "tflm_seanet_add0_int16x8", "st_ssd_mobilenet_v1_025_224_coco_int8"])
def test_shared_int16_and_multi_output_models_pass_check(name, tmp_path):
    path = os.path.join(SHARED_MODELS, name + ".tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)" % path)
    proc = run_scons(tmp_path, "check", check=False, MODEL=path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "scores match TFLite byte for byte" in proc.stdout
