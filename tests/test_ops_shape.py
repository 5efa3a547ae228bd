"""Data-movement and reduction ops (PAD, PADV2, CONCATENATION, SQUEEZE, STRIDED_SLICE, RESIZE_NEAREST_NEIGHBOR,
TRANSPOSE, MEAN over any axes) lowered by codegen/lowering/ops/shape.py and reduce.py, compared byte for byte
with tf.lite's reference kernels (BUILTIN_REF): the output and every traced intermediate tensor.

Two kinds of models: small Keras models converted to full int8 (int8 and uint8 I/O; the converter canonicalizes
slices and keeps every internal tensor int8), and hand-built flatbuffers for what the converter never emits --
uint8 tensors inside the model (uint8 CONCATENATION rescales with ConcatenationWithScaling), ellipsis / new-axis
/ offset strided slices, SQUEEZE, MEAN with equal or extreme scales -- and for the configurations that must be
rejected with a clear error."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen import frontend  # noqa: E402
from hand_models import T, assert_refused, every_value_rows, flatbuffer, i32c  # noqa: E402
from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402

pytestmark = pytest.mark.heavy      # every case trains, converts and compiles a model (TVM + gcc): minutes; `pytest -m 'not heavy'` skips it

N_IMAGES = 40


# ---------------------------------------------------------------------------------------------------------------
# Keras models (converted to full int8)


def _lambda(fn):
    import keras
    return keras.layers.Lambda(fn)


def _pads(shape):
    """ZeroPadding2D (PAD on all four edges, asymmetric), channel padding (PAD, not image style) and tf.pad with
    a constant (PADV2) on an odd-sized map."""
    import keras
    import tensorflow as tf
    L = keras.layers
    keras.utils.set_random_seed(11)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(4, 3, padding="same")(x)
    # one chain: with the pads on two branches of one tensor the converter leaves a convolution in float
    a = L.ZeroPadding2D(((1, 2), (0, 3)))(x)                                   # top 1, bottom 2, right 3
    a = L.Conv2D(4, 2)(a)
    a = L.ZeroPadding2D(((0, 1), (2, 0)))(a)                                   # bottom 1, left 2
    a = _lambda(lambda t: tf.pad(t, [[0, 0], [0, 0], [0, 0], [1, 2]]))(a)      # channels
    a = _lambda(lambda t: tf.pad(t, [[0, 0], [2, 0], [1, 1], [0, 0]], constant_values=0.3))(a)  # PADV2
    return keras.Model(inp, L.Dense(4)(L.GlobalAveragePooling2D()(a)))


def _concats(shape):
    """CONCATENATION along channels (unequal sizes), H (axis 1), W as axis -2 of three inputs, and of 2-D
    vectors (axis -1 of a rank-2 tensor)."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(12)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    a = L.Conv2D(4, 3, padding="same")(x)
    b = L.Conv2D(3, 1)(x)
    c = L.Conv2D(4, 1, activation="relu")(x)
    ch = L.Concatenate(axis=-1)([a, b])                       # (H, W, 7)
    hh = L.Concatenate(axis=1)([a, c])                        # (2H, W, 4)
    ww = L.Concatenate(axis=-2)([c, a, c])                    # (H, 3W, 4)
    v = L.Concatenate()([L.GlobalAveragePooling2D()(t) for t in (ch, hh, ww)])
    return keras.Model(inp, L.Dense(5)(v))


def _slices(shape):
    """STRIDED_SLICE: steps, a negative step with negative begin, a shrunk axis in the middle, the last axis
    shrunk (x[..., 1]), begin/end masks."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(13)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(4, 3, padding="same")(x)
    parts = [_lambda(lambda t: t[:, 1:7:2, ::3, :])(x),
             _lambda(lambda t: t[:, ::-1, -2:1:-3, 1:3])(x),
             _lambda(lambda t: t[:, 2, :, :])(x),
             _lambda(lambda t: t[..., 1])(x),
             _lambda(lambda t: t[:, -3:, 4:100, ::2])(x)]
    v = L.Concatenate()([L.Flatten()(p) for p in parts])
    return keras.Model(inp, L.Dense(4)(v))


def _resizes(shape):
    """RESIZE_NEAREST_NEIGHBOR: half-pixel centers (Keras Resizing), align_corners, neither; up and down; sizes
    whose float32 source index differs from the exact one (14 -> 23 rows half-pixel, 26 -> 22 columns plain), so
    constant tables are used next to closed forms."""
    import keras
    import tensorflow as tf
    L = keras.layers
    keras.utils.set_random_seed(14)
    v1 = tf.compat.v1.image.resize_nearest_neighbor
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(3, 1)(x)
    parts = [L.Resizing(23, 7, interpolation="nearest")(x),
             L.Resizing(5, 9, interpolation="nearest")(x),
             _lambda(lambda t: v1(t, (23, 39), align_corners=True))(x),
             _lambda(lambda t: v1(t, (6, 22)))(x),
             _lambda(lambda t: v1(t, (28, 52)))(x)]
    v = L.Concatenate()([L.GlobalAveragePooling2D()(p) for p in parts])
    return keras.Model(inp, L.Dense(4)(v))


def _means4(shape):
    """MEAN of a 4-D tensor over [1], [2], [3] (keep_dims), [-1], [1, 2] (keep and not), [2, 3], [1, 2, 3]."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(15)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(6, 3, padding="same")(x)
    mean = keras.ops.mean
    parts = [_lambda(lambda t: mean(t, axis=1, keepdims=True))(x),
             _lambda(lambda t: mean(t, axis=2))(x),
             _lambda(lambda t: mean(t, axis=3, keepdims=True))(x),
             _lambda(lambda t: mean(t, axis=-1))(x),
             _lambda(lambda t: mean(t, axis=(1, 2), keepdims=True))(x),
             _lambda(lambda t: mean(t, axis=(1, 2)))(x),
             _lambda(lambda t: mean(t, axis=(2, 3)))(x),
             _lambda(lambda t: mean(t, axis=(1, 2, 3)))(x)]
    v = L.Concatenate()([L.Flatten()(p) for p in parts])
    v = L.Dense(6)(v)
    return keras.Model(inp, _lambda(lambda t: mean(t, axis=-1, keepdims=True))(v))


def _means_low(shape):
    """MEAN of 3-D tensors over [1], [2] (keep_dims), [-1], [1, 2], and of a 2-D tensor over [1]."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(16)
    mean = keras.ops.mean
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Dense(6)(x)                                          # (1, T, 6)
    parts = [_lambda(lambda t: mean(t, axis=1))(x),
             _lambda(lambda t: mean(t, axis=2, keepdims=True))(x),
             _lambda(lambda t: mean(t, axis=-1))(x),
             _lambda(lambda t: mean(t, axis=(1, 2), keepdims=True))(x)]
    v = L.Concatenate()([L.Flatten()(p) for p in parts])
    v = L.Dense(5)(v)
    return keras.Model(inp, _lambda(lambda t: mean(t, axis=1, keepdims=True))(v))


def _transposes(shape):
    """TRANSPOSE (Keras Permute): H <-> W, and channels first."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(17)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(4, 3, padding="same")(x)
    a = L.Conv2D(3, 1)(L.Permute((2, 1, 3))(x))
    b = L.Conv2D(3, 1)(L.Permute((3, 1, 2))(x))
    v = L.Concatenate()([L.GlobalAveragePooling2D()(a), L.GlobalAveragePooling2D()(b)])
    return keras.Model(inp, L.Dense(4)(v))


# name: (builder, input shape, input type, output type, ops that must occur)
CASES = {
    "pads_i8": (_pads, (7, 5, 3), "int8", "int8", {"PAD", "PADV2"}),
    "pads_u8": (_pads, (7, 5, 3), "uint8", "uint8", {"PAD", "PADV2"}),
    "concats_i8": (_concats, (6, 5, 3), "int8", "int8", {"CONCATENATION"}),
    "slices_i8": (_slices, (8, 9, 3), "int8", "int8", {"STRIDED_SLICE"}),
    "slices_u8": (_slices, (8, 9, 3), "uint8", "uint8", {"STRIDED_SLICE"}),
    "resizes_i8": (_resizes, (14, 26, 3), "int8", "int8", {"RESIZE_NEAREST_NEIGHBOR"}),
    "means4_i8": (_means4, (5, 7, 3), "int8", "int8", {"MEAN"}),
    "means4_u8": (_means4, (5, 7, 3), "uint8", "uint8", {"MEAN"}),
    "means_low_i8": (_means_low, (9, 7), "int8", "int8", {"MEAN"}),
    "transposes_u8": (_transposes, (5, 4, 3), "uint8", "uint8", {"TRANSPOSE"}),
}


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("shape_op_models")
    rs = np.random.RandomState(0)
    out, built = {}, {}
    for name, (fn, shape, in_type, out_type, _) in CASES.items():
        X = rs.randint(0, 256, (N_IMAGES,) + shape).astype(np.uint8)
        key = (fn, shape)
        if key not in built:  # the int8 and uint8 variants share one trained Keras model
            built[key] = fit_briefly(fn(shape), X)
        p = str(d / ("%s.tflite" % name))
        with open(p, "wb") as f:
            f.write(convert_int8(built[key], X, in_type, out_type))
        out[name] = (p, as_input_dtype(X, in_type))
    return out


def _print_ops(m):
    for op in m.ops:
        if op.type not in ("CONV_2D", "FULLY_CONNECTED", "QUANTIZE"):
            print("  #%d %s %s in %s -> %s" % (op.index, op.type, op.options,
                                               [list(m.tensors[i].shape) for i in op.inputs],
                                               [list(m.tensors[i].shape) for i in op.outputs]))


@pytest.mark.parametrize("case", list(CASES))
def test_converted_model_bit_exact(keras_models, case, tmp_path):
    path, X = keras_models[case]
    expected = CASES[case][4]
    m = frontend.load(path)
    types = [op.type for op in m.ops]
    print("%s ops: %s" % (case, types))
    _print_ops(m)
    assert set(types) >= expected, types
    meta, rep = check_exact(path, X, tmp_path, expected, model_name="shape_" + case)
    assert len(np.unique(rep.reference_outputs)) > 4


def test_converted_options_are_the_ones_meant(keras_models):
    """The converted models really carry the configurations the builders aim at (so the bit-exact runs above
    cover them): pads on every edge, negative concatenation axes, shrink masks and negative strides, each resize
    mode, MEAN with and without keep_dims."""
    def ops(case, typ):
        m = frontend.load(keras_models[case][0])
        return m, [op for op in m.ops if op.type == typ]

    m, pads = ops("pads_i8", "PAD")
    edges = np.zeros((4, 2), bool)
    for op in pads:
        edges |= np.asarray(m.tensors[op.inputs[1]].data) > 0
    assert edges[1:3].all() and edges[3].any()          # top, bottom, left, right; channels
    _, concats = ops("concats_i8", "CONCATENATION")
    assert {op.options["axis"] for op in concats} >= {-1, 1, -2} or len(concats) >= 4
    m, slices = ops("slices_i8", "STRIDED_SLICE")
    assert any(op.options["shrink_axis_mask"] for op in slices)
    assert any((np.asarray(m.tensors[op.inputs[3]].data) < 0).any() for op in slices)
    _, resizes = ops("resizes_i8", "RESIZE_NEAREST_NEIGHBOR")
    modes = {(op.options["align_corners"], op.options["half_pixel_centers"]) for op in resizes}
    assert modes == {(False, True), (True, False), (False, False)}
    _, means = ops("means4_i8", "MEAN")
    assert {op.options["keep_dims"] for op in means} == {True, False}


# ---------------------------------------------------------------------------------------------------------------
# Hand-built flatbuffers


def _slice_model(dtype, shape, begin, end, strides, out_shape, **masks):
    q = (0.05, 3 if dtype == "int8" else 131)
    fields = {"BeginMask": masks.get("begin_mask", 0), "EndMask": masks.get("end_mask", 0),
              "EllipsisMask": masks.get("ellipsis", 0), "NewAxisMask": masks.get("new_axis", 0),
              "ShrinkAxisMask": masks.get("shrink", 0), "Offset": masks.get("offset", False)}
    tensors = [T(shape, dtype, q), i32c(begin), i32c(end), i32c(strides), T(out_shape, dtype, q)]
    return flatbuffer(tensors, [("STRIDED_SLICE", [0, 1, 2, 3], [4], "StridedSliceOptions", fields)], [0], [4])


X6 = np.empty((1, 6, 7, 4))


def _hand_cases():
    """name: (flatbuffer bytes, ops that must occur)."""
    u8, i8 = "uint8", "int8"
    cases = {}
    # uint8 CONCATENATION along channels of the model input (rescaled by ConcatenationWithScaling's float32
    # formula; these scales put many values on a rounding tie, where float32 differs from exact arithmetic and
    # from a fused multiply-add), a requantized copy quantized like the output (copied unchanged) and one quantized
    # otherwise; then along W (axis -2) into an output quantized unlike all three
    qx, qo, qb = (0.015515973791480064, 144), (0.03103194758296013, 125), (0.05, 0)
    quantize = [("QUANTIZE", [0], [1], None, {}), ("QUANTIZE", [0], [2], None, {})]
    tensors = [T((1, 4, 4, 3), u8, qx), T((1, 4, 4, 3), u8, qo), T((1, 4, 4, 3), u8, qb)]
    cases["concat_rescale_u8_channels"] = (
        flatbuffer(tensors + [T((1, 4, 4, 9), u8, qo)],
                   quantize + [("CONCATENATION", [1, 0, 2], [3], "ConcatenationOptions", {"Axis": 3})], [0], [3]),
        {"CONCATENATION", "QUANTIZE"})
    cases["concat_rescale_u8_width"] = (
        flatbuffer(tensors + [T((1, 4, 12, 3), u8, (0.017, 90))],
                   quantize + [("CONCATENATION", [0, 2, 1], [3], "ConcatenationOptions", {"Axis": -2})], [0], [3]),
        {"CONCATENATION", "QUANTIZE"})
    # ellipsis first: x[..., 1:3]
    cases["slice_ellipsis_first"] = (_slice_model(i8, X6.shape, [0, 1], [0, 3], [1, 1], X6[..., 1:3].shape,
                                                  ellipsis=1), {"STRIDED_SLICE"})
    # ellipsis in the middle with a shrunk first axis and a negative step: x[0, ..., ::-2]
    cases["slice_ellipsis_mid_u8"] = (_slice_model(u8, X6.shape, [0, 0, 0], [1, 0, 0], [1, 1, -2],
                                                   X6[0, ..., ::-2].shape, ellipsis=2, shrink=1, begin_mask=4, end_mask=4),
                                      {"STRIDED_SLICE"})
    # new axis: x[:, None, 2:5, :, 1]
    cases["slice_new_axis"] = (_slice_model(i8, X6.shape, [0, 0, 2, 0, 1], [0, 0, 5, 0, 2], [1, 1, 1, 1, 1],
                                            X6[:, None, 2:5, :, 1].shape, begin_mask=0b01001, end_mask=0b01001,
                                            new_axis=0b00010, shrink=0b10000), {"STRIDED_SLICE"})
    # offset: end holds sizes (x[0:1, 1:4, 2:6:2, :])
    cases["slice_offset"] = (_slice_model(i8, X6.shape, [0, 1, 2, 0], [1, 3, 4, 4], [1, 1, 2, 1],
                                          X6[0:1, 1:4, 2:6:2, :].shape, offset=True), {"STRIDED_SLICE"})
    # out-of-range and negative bounds, clamped; a reversed axis with begin past the end
    cases["slice_clamped"] = (_slice_model(i8, X6.shape, [0, -100, 50, 0], [1, 100, -100, 4], [1, 2, -3, 3],
                                           X6[0:1, -100:100:2, 50:-100:-3, 0:4:3].shape), {"STRIDED_SLICE"})
    # SQUEEZE of listed dimensions, then of all size-1 ones, each followed by a kernel
    q = (0.1, -5)
    tensors = [T((1, 1, 5, 1, 3), i8, q), T((1, 5, 3), i8, q), i32c([[0, 0], [1, 0], [0, 2]]), T((1, 6, 5), i8, q),
               T((6, 5), i8, q), i32c([[1, 1], [0, 0]]), T((8, 5), i8, q)]
    ops = [("SQUEEZE", [0], [1], "SqueezeOptions", {"SqueezeDims": [1, -2]}), ("PAD", [1, 2], [3], None, {}),
           ("SQUEEZE", [3], [4], "SqueezeOptions", {}), ("PAD", [4, 5], [6], None, {})]
    cases["squeeze"] = (flatbuffer(tensors, ops, [0], [6]), {"SQUEEZE", "PAD"})
    # uint8 chain: PADV2 (constant at the output's quantization), RESIZE (align_corners), TRANSPOSE, MEAN over W
    # and C with a new scale, every tensor uint8
    q, qm = (0.04, 120), (0.01, 7)
    tensors = [T((1, 5, 6, 3), u8, q), i32c([[0, 0], [2, 1], [0, 3], [0, 0]]), T((), u8, q, 200),
               T((1, 8, 9, 3), u8, q), i32c([11, 5]), T((1, 11, 5, 3), u8, q), i32c([0, 3, 2, 1]),
               T((1, 3, 5, 11), u8, q), i32c([-2, 3]), T((1, 3), u8, qm)]
    ops = [("PADV2", [0, 1, 2], [3], None, {}),
           ("RESIZE_NEAREST_NEIGHBOR", [3, 4], [5], "ResizeNearestNeighborOptions", {"AlignCorners": True}),
           ("TRANSPOSE", [5, 6], [7], None, {}), ("MEAN", [7, 8], [9], "ReducerOptions", {"KeepDims": False})]
    cases["chain_u8"] = (flatbuffer(tensors, ops, [0], [9]), {"PADV2", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE",
                                                              "MEAN"})
    # MEAN with equal input and output quantization (older TFLite had a separate integer path for it), with a
    # scale ratio > 1 (left shift), and with a ratio so small that the 1/n shift is clamped at 31 + shift
    for name, qi, qo_, axes, keep in (("mean_same_q", (0.1, 4), (0.1, 4), [1], True),
                                      ("mean_ratio_up", (0.05, -20), (0.011, 3), [-1], False),
                                      ("mean_tiny_ratio", (2.0 ** -27, 0), (1.0, -100), [1, 2], True),
                                      ("mean_zero_multiplier", (2.0 ** -40, 0), (1.0, -100), [3], True)):
        kept = [1 if d in [a % 4 for a in axes] else n for d, n in enumerate((1, 8, 9, 5))]
        out = kept if keep else [n for d, n in enumerate((1, 8, 9, 5)) if d not in [a % 4 for a in axes]]
        tensors = [T((1, 8, 9, 5), i8, qi), i32c(axes), T(out, i8, qo_)]
        cases[name] = (flatbuffer(tensors, [("MEAN", [0, 1], [2], "ReducerOptions", {"KeepDims": keep})],
                                  [0], [2]), {"MEAN"})
    return cases


HAND = _hand_cases()


@pytest.fixture(scope="module")
def hand_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("hand_models")
    out = {}
    for name, (buf, _) in HAND.items():
        p = str(d / ("%s.tflite" % name))
        with open(p, "wb") as f:
            f.write(buf)
        out[name] = p
    return out


@pytest.mark.parametrize("case", list(HAND))
def test_hand_built_model_bit_exact(hand_models, case, tmp_path):
    path = hand_models[case]
    m = frontend.load(path)
    print("%s ops: %s" % (case, [op.type for op in m.ops]))
    _print_ops(m)
    meta, rep = check_exact(path, every_value_rows(path, 30), tmp_path, HAND[case][1], model_name="hand_" + case)
    assert len(np.unique(rep.reference_outputs)) > 1 or case in ("mean_tiny_ratio", "mean_zero_multiplier")


# ---------------------------------------------------------------------------------------------------------------
# Configurations that must be refused (in the op's validate hook, naming the op)


def _refused():
    i8 = "int8"
    q = (0.05, 1)
    cases = {}
    # int8 CONCATENATION of unequal quantization: TFLite's int8 kernel refuses to rescale
    tensors = [T((1, 4, 4, 3), i8, q), T((1, 4, 4, 3), i8, (0.07, 1)), T((1, 4, 4, 6), i8, q)]
    cases["concat_int8_rescale"] = (flatbuffer(tensors, [("QUANTIZE", [0], [1], None, {}),
                                                         ("CONCATENATION", [0, 1], [2], "ConcatenationOptions",
                                                          {"Axis": 3})], [0], [2]),
                                    "CONCATENATION (op #1)", "needs them equal")
    tensors = [T((1, 4, 4, 3), i8, q), T((1, 4, 4, 6), i8, q)]
    cases["concat_activation"] = (flatbuffer(tensors, [("CONCATENATION", [0, 0], [1], "ConcatenationOptions",
                                                        {"Axis": 3, "FusedActivationFunction": 1})], [0], [1]),
                                  "CONCATENATION (op #0)", "fused activation RELU")
    # paddings computed at run time (here: a tensor without data that no op writes)
    tensors = [T((1, 4, 4, 3), i8, q), T((4, 2), "int32"), T((1, 6, 6, 3), i8, q)]
    cases["pad_dynamic"] = (flatbuffer(tensors, [("PAD", [0, 1], [2], None, {})], [0], [2]),
                            "PAD (op #0)", "paddings must be a constant tensor")
    # PADV2 whose constant is quantized unlike the output
    tensors = [T((1, 4, 4, 3), i8, q), i32c([[0, 0], [1, 1], [0, 0], [0, 0]]), T((), i8, (0.1, 0), 3),
               T((1, 6, 4, 3), i8, q)]
    cases["padv2_quant"] = (flatbuffer(tensors, [("PADV2", [0, 1, 2], [3], None, {})], [0], [3]),
                            "PADV2 (op #0)", "quantized differently")
    # MEAN with an empty axis list, and over an axis out of range
    for name, axes, what in (("mean_no_axes", np.zeros((0,), np.int32), "empty axis list"),
                             ("mean_bad_axis", [4], "out of range")):
        tensors = [T((1, 4, 4, 3), i8, q), i32c(axes), T((1, 4, 4, 3), i8, q)]
        cases[name] = (flatbuffer(tensors, [("MEAN", [0, 1], [2], "ReducerOptions", {"KeepDims": True})],
                                  [0], [2]), "MEAN (op #0)", what)
    # an offset slice whose sizes run past the input (TFLite would leave part of its output unset)
    cases["slice_offset_overrun"] = (_slice_model(i8, (1, 6, 7, 4), [0, 4, 0, 0], [1, 3, 7, 4], [1, 1, 1, 1],
                                                  (1, 3, 7, 4), offset=True),
                                     "STRIDED_SLICE (op #0)", "runs past the input")
    # an output tensor that disagrees with the slice
    cases["slice_wrong_shape"] = (_slice_model(i8, (1, 6, 7, 4), [0, 1, 0, 0], [1, 5, 7, 4], [1, 2, 1, 1],
                                               (1, 3, 7, 4)), "STRIDED_SLICE (op #0)", "yields shape [1, 2, 7, 4]")
    # a negative permutation entry (transpose.cc refuses it)
    tensors = [T((1, 4, 5, 3), i8, q), i32c([0, 2, 1, -1]), T((1, 5, 4, 3), i8, q)]
    cases["transpose_negative_perm"] = (flatbuffer(tensors, [("TRANSPOSE", [0, 1], [2], None, {})], [0], [2]),
                                        "TRANSPOSE (op #0)", "is not a permutation")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)


def test_uint8_rescale_table_matches_the_interpreter_on_all_values(hand_models):
    """ConcatenationWithScaling's float32 rescale, precomputed as a table, against BUILTIN_REF on all 256 input
    values (the intermediate comparison above covers it too; this pins the table function itself)."""
    import tensorflow as tf
    from codegen.lowering.ops.shape import concat_rescale_table

    path = hand_models["concat_rescale_u8_channels"]
    m = frontend.load(path)
    op = [o for o in m.ops if o.type == "CONCATENATION"][0]
    o_t = m.tensors[op.outputs[0]]
    it = tf.lite.Interpreter(model_path=path, experimental_op_resolver_type=tf.lite.experimental.OpResolverType.
                             BUILTIN_REF, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ins = [m.tensors[i] for i in op.inputs]
    seen = [np.zeros(256, bool) for _ in ins]
    for row in every_value_rows(path, 0):
        it.set_tensor(m.input_ids[0], row)
        it.invoke()
        y = it.get_tensor(o_t.index)
        for k, t in enumerate(ins):
            x = it.get_tensor(t.index)
            tab = concat_rescale_table(t.scale[0], t.zero_point[0], o_t.scale[0], o_t.zero_point[0])
            got = y[..., 3 * k:3 * k + 3]
            assert np.array_equal(got, x if tab is None else tab[x]), k
            seen[k][x.ravel()] = True
    assert seen[1].all()                 # the model input (rescaled) took every value
