"""TFLite's 16x8 mode (int16 activations, int8 weights) and TRANSPOSE_CONV (int8 and 16x8), bit-exact with
tf.lite's reference kernels (BUILTIN_REF) on every tensor.

The models are converted by the fuzzer's builder (codegen.fuzz.build: tf.function + TFLiteConverter with
EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 for a 16x8 spec); the TFLite Micro seanet models in
../shared/models are published 16x8 exports.  An op with int16 activations that has no 16x8 kernel, and an int16
tensor with a zero point, are refused with one error line."""

import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from codegen import fuzz  # noqa: E402
from codegen.errors import ModelError  # noqa: E402
from tflite_helpers import SHARED_MODELS, check_exact  # noqa: E402

HAVE_QEMU = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def spec16(layers, shape=(1, 6, 7, 5), scale=1.3, offset=0.2, per_channel=True, seed=5, int16=True):
    t = "int16" if int16 else "int8"
    return {"input": list(shape), "in_type": t, "out_type": t, "per_channel": per_channel, "uint8_kernels": False,
            "scale": scale, "offset": offset, "seed": seed, "layers": layers, "int16": int16}


CONV = {"op": "CONV_2D", "k": [3, 3], "s": [2, 1], "d": [1, 1], "pad": "SAME", "act": "RELU", "out": 6, "bias": True}
CASES = {
    "conv_2d": spec16([CONV]),
    "conv_2d_dilated_no_bias": spec16([dict(CONV, s=[1, 1], d=[2, 1], pad="VALID", act="NONE", bias=False)]),
    "depthwise_mult2": spec16([{"op": "DEPTHWISE_CONV_2D", "k": [3, 2], "s": [1, 1], "d": [1, 1], "pad": "SAME",
                                "act": "RELU6", "mult": 2, "bias": True}]),
    # per-tensor: the 16x8 FULLY_CONNECTED rounds once with the full multiplier (the fuzzer's first finding)
    "fully_connected_per_tensor": spec16([{"op": "FULLY_CONNECTED", "out": 5, "act": "RELU", "bias": True}],
                                         (1, 16, 1, 4), per_channel=False, scale=1.4, offset=0.6),
    "fully_connected_per_channel": spec16([{"op": "FULLY_CONNECTED", "out": 10, "act": "NONE", "bias": True}]),
    # the converter's int32 bias option (_experimental_full_integer_quantization_bias_type): int32 sums and the
    # int32 MultiplyByQuantizedMultiplier
    "conv_2d_int32_bias": dict(spec16([CONV]), bias32=True),
    "fully_connected_int32_bias": dict(spec16([{"op": "FULLY_CONNECTED", "out": 7, "act": "NONE", "bias": True}]),
                                       bias32=True),
    "add_const_broadcast": spec16([{"op": "ADD", "other": "const", "bshape": [1, 1, 5], "swap": False,
                                    "act": "NONE"}]),
    "add_self": spec16([{"op": "ADD", "other": "self", "bshape": [], "swap": False, "act": "RELU"}]),
    "sub_const": spec16([{"op": "SUB", "other": "const", "bshape": [6, 7, 5], "swap": True, "act": "NONE"}]),
    "mul_const": spec16([{"op": "MUL", "other": "const", "bshape": [1, 7, 1], "swap": False, "act": "NONE"}]),
    # the 16x8 converter's float output: a final DEQUANTIZE of int16
    "conv_2d_float_output": dict(spec16([dict(CONV, s=[1, 1])]), out_type="float32"),
    "leaky_relu": spec16([{"op": "LEAKY_RELU", "alpha": 0.3}]),
    "logistic": spec16([{"op": "LOGISTIC"}], scale=4.0),
    # a small input scale: |rescaled input| beyond the table, where TFLite saturates (uint32 index; fuzzer finding)
    "tanh_saturating": spec16([{"op": "TANH"}], (1, 1, 3, 3), scale=26.1, offset=-1.5, seed=451896),
    "softmax": spec16([{"op": "SOFTMAX", "beta": 1.0}], (1, 3, 13), scale=3.0),
    "mean": spec16([{"op": "MEAN", "axes": [1, 2], "keep": True}]),
    "pools_and_relu": spec16([{"op": "RELU"}, {"op": "AVERAGE_POOL_2D", "k": [2, 3], "s": [2, 1], "pad": "SAME", "act": "NONE"},
                              {"op": "MAX_POOL_2D", "k": [2, 2], "s": [1, 1], "pad": "VALID", "act": "RELU"},
                              {"op": "RELU6"}]),
    "data_movement": spec16([{"op": "PAD", "pads": [[0, 0], [1, 0], [0, 2], [0, 0]]},
                             {"op": "TRANSPOSE", "perm": [0, 2, 1, 3]},
                             {"op": "STRIDED_SLICE", "begin": [0, 1, 0, 0], "end": [1, 8, 7, 5],
                              "strides": [1, 2, 1, 2]},
                             {"op": "CONCATENATION", "other": "relu", "axis": 3, "n": 0},
                             {"op": "RESHAPE", "to": [1, -1]}]),
    "resize_bilinear_half_pixel": spec16([{"op": "RESIZE_BILINEAR", "size": [9, 4], "mode": "half"}]),
    "transpose_conv": spec16([{"op": "TRANSPOSE_CONV", "k": [3, 2], "s": [2, 2], "pad": "SAME", "out": 4,
                               "bias": True}]),
    # no bias: TFLite's 16x8 kernel still accumulates in int64 (fuzzer finding)
    "transpose_conv_no_bias": spec16([{"op": "TRANSPOSE_CONV", "k": [1, 1], "s": [1, 1], "pad": "VALID",
                                       "out": 6, "bias": False}], (1, 1, 1, 1), scale=0.3095, offset=1.177,
                                     seed=279305),
    "transpose_conv_int8": spec16([{"op": "TRANSPOSE_CONV", "k": [3, 3], "s": [2, 1], "pad": "VALID", "out": 3,
                                    "bias": True}], int16=False),
    "transpose_conv_int8_same_stride3": spec16([{"op": "TRANSPOSE_CONV", "k": [2, 4], "s": [3, 2], "pad": "SAME",
                                                 "out": 5, "bias": False}], (1, 3, 4, 2), int16=False, seed=9),
}
# ops the converter adds: the 16x8 concatenation of x and relu(x) requantizes relu(x) (QUANTIZE int16 -> int16)
CONVERTER_ADDS = {"data_movement": {"QUANTIZE"}, "conv_2d_float_output": {"DEQUANTIZE"}}
FAST = ("leaky_relu", "transpose_conv", "transpose_conv_int8")     # the fast loop's share (-m "not heavy")


def _build(spec, tmp_path):
    path = str(tmp_path / "m.tflite")
    with open(path, "wb") as f:
        f.write(fuzz.build(spec))
    return path


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.heavy) for n in CASES])
def test_16x8_and_transpose_conv_bit_exact(name, tmp_path):
    from codegen.runners import exactness
    spec = CASES[name]
    path = _build(spec, tmp_path)
    ops = {la["op"] for la in spec["layers"]} | CONVERTER_ADDS.get(name, set())
    X = exactness.random_inputs(path, 8, seed=3)
    assert str(X.dtype) == ("int16" if spec["int16"] else "int8")
    meta, rep = check_exact(path, X, tmp_path, ops)
    assert len(rep.checked_ops) == len(meta["calls"])


def test_every_16x8_op_has_a_case():
    """Each op with a 16x8 kernel is in CASES (and so proved bit-exact), but those the fuzzer covers only as
    carried data (the shape ops' int8 lowering on int16 data, fuzzed by test_fuzz's 16x8 budget)."""
    from codegen.lowering.ops.int16 import CARRY_INT16
    from codegen.lowering.registry import registry16
    covered = {la["op"] for s in CASES.values() if s["int16"] for la in s["layers"]}
    covered |= {op for name, ops in CONVERTER_ADDS.items() if CASES[name]["int16"] for op in ops}
    missing = set(registry16()) - covered - set(CARRY_INT16)
    assert not missing, missing


@pytest.mark.heavy      # ~6 s; the int8 fast budget (test_fuzz.py) stays in the fast loop
def test_16x8_fuzz_budget_finds_nothing(tmp_path):
    """A fixed-seed budget of 16x8 models over the 16x8 ops: nothing differs, nothing breaks."""
    s = fuzz.run(seed=4, count=12, chains=0.3, log=print, minimize_budget=0, workdir=str(tmp_path), int16=1.0,
                 ops=["CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "LEAKY_RELU", "SOFTMAX", "TANH"])
    assert s["models"] == 12 and all(k.endswith("/16x8") for k in s["per_op"]), s["per_op"]
    assert s["outcomes"].get("exact", 0) >= 9, s["outcomes"]
    assert not s["findings"], s["findings"]


def _refusal(buf, tmp_path):
    from codegen.emit import mlf
    path = str(tmp_path / "r.tflite")
    with open(path, "wb") as f:
        f.write(buf)
    with pytest.raises(ModelError) as e:
        mlf.build_mlf(path, str(tmp_path / "r.tar"))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_int16_op_without_a_16x8_kernel_is_refused(tmp_path):
    """HARD_SWISH has no int16 kernel in TFLite: one error line naming the op and the 16x8 ops there are."""
    buf = fuzz.as_int16_activations(fuzz.build(spec16([{"op": "HARD_SWISH"}], int16=False)))
    msg = _refusal(buf, tmp_path)
    assert "HARD_SWISH" in msg and "16x8" in msg and "CONV_2D" in msg, msg


def test_16x8_depthwise_with_int32_bias_is_refused(tmp_path):
    """tf.lite's 16x8 depthwise kernel refuses an int32 bias (depthwise_conv.cc: bias->type != kTfLiteInt64)."""
    buf = fuzz.build(dict(CASES["depthwise_mult2"], bias32=True))
    msg = _refusal(buf, tmp_path)
    assert "DEPTHWISE_CONV_2D" in msg and "int64 bias" in msg, msg


def test_int16_zero_point_is_refused(tmp_path):
    """TFLite's 16x8 kernels are symmetric: an int16 activation with a zero point is refused, naming it."""
    buf = fuzz.as_int16_activations(fuzz.build(spec16([CONV], int16=False)), zero_point=3)
    msg = _refusal(buf, tmp_path)
    assert "zero point 3" in msg and "CONV_2D" in msg, msg


@pytest.mark.parametrize("name", ["conv0", "leaky_relu0"])
def test_tflm_seanet_16x8_models_bit_exact(name, tmp_path):
    """TFLite Micro's seanet integration-test models (published 16x8 exports)."""
    from codegen.runners import exactness
    path = os.path.join(SHARED_MODELS, "tflm_seanet_%s_int16x8.tflite" % name)
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI)" % path)
    meta, rep = check_exact(path, exactness.random_inputs(path, 6, seed=1), tmp_path, model_name=name)
    assert len(rep.checked_ops) == len(meta["calls"]) >= 1


def _one_input_constant(buf, k, seed=0):
    """The two-input model with its input `k` made a constant of random int16 values (same shape and scale), so
    that the single-input exactness runner can run it."""
    import numpy as np

    def fn(model):
        from tensorflow.lite.python import schema_py_generated as fb
        g = model.subgraphs[0]
        t = g.tensors[g.inputs[k]]
        b = fb.BufferT()
        b.data = list(np.random.RandomState(seed).randint(-32768, 32768, int(np.prod(t.shape))).astype("<i2")
                      .tobytes())
        model.buffers.append(b)
        t.buffer = len(model.buffers) - 1
        g.inputs = [i for j, i in enumerate(g.inputs) if j != k]
    return fuzz.edit_flatbuffer(buf, fn)


@pytest.mark.parametrize("k", [0, 1])
def test_tflm_seanet_add0_arithmetic_bit_exact(k, tmp_path):
    """seanet's add0 has two inputs (their feeding is the multi-I/O work's); its ADD at the model's own scales, with
    either input made a constant, is bit-exact."""
    from codegen.runners import exactness
    path = os.path.join(SHARED_MODELS, "tflm_seanet_add0_int16x8.tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI)" % path)
    one = str(tmp_path / "add0_one_input.tflite")
    with open(one, "wb") as f:
        f.write(_one_input_constant(open(path, "rb").read(), k))
    meta, rep = check_exact(one, exactness.random_inputs(one, 8, seed=k), tmp_path, {"ADD"}, model_name="add0")
    assert len(rep.checked_ops) == 1


@pytest.mark.heavy
@pytest.mark.skipif(not HAVE_QEMU, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name", ["conv_2d", "fully_connected_per_channel", "add_const_broadcast", "transpose_conv"])
def test_16x8_bit_exact_on_cortex_m4(name, tmp_path):
    """The 16x8 kernels' C (int64 sums and requantization) on the emulated Cortex-M4F: every tensor's hash equals
    BUILTIN_REF's."""
    o = fuzz.check(dict(CASES[name], microkernels=True), str(tmp_path), target="cortex-m4", n_inputs=3)
    assert o.kind == "exact", o


@pytest.mark.heavy
@pytest.mark.skipif(not HAVE_QEMU, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_tflm_seanet_conv0_bit_exact_on_cortex_m4(tmp_path):
    from codegen.emit import mlf
    from codegen.runners import exactness
    path = os.path.join(SHARED_MODELS, "tflm_seanet_conv0_int16x8.tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI)" % path)
    tar = str(tmp_path / "m.tar")
    mlf.build_mlf(path, tar, model_name="conv0")
    rep = exactness.compare(path, tar, exactness.random_inputs(path, 2, seed=2), str(tmp_path), target="cortex-m4")
    assert rep.exact, rep


def test_backend_auto_names_the_int16_op_without_a_16x8_kernel(tmp_path):
    """BACKEND=auto's list of what the TVM generator cannot take names an op whose int16 activations have no 16x8
    kernel (so such a model goes to TFLite Micro, or the error names every such op at once)."""
    from codegen.frontend import reader
    path = str(tmp_path / "hs16.tflite")
    with open(path, "wb") as f:
        f.write(fuzz.as_int16_activations(fuzz.build(spec16([CONV, {"op": "HARD_SWISH"}], int16=False))))
    missing = reader.unsupported_ops(path)
    assert [t for t, _ in missing] == ["HARD_SWISH with int16 activations"], missing
