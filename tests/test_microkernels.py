"""The hand-written int8 microkernels of codegen/lowering/microkernels.h (tvmgen_mk_conv, tvmgen_mk_dwconv,
tvmgen_mk_fc_pair / tvmgen_mk_fc) bit-exact with tf.lite's reference kernels (BUILTIN_REF), every intermediate
tensor, on the host (plain C paths) and on the emulated Cortex-M4 (SMLAD / Thumb-2 asm paths).

Small Keras models, trained for one short epoch and converted to full-int8 TFLite, reach every tail case of the
loops: channel counts that are not a multiple of 4 (1, 3, 5, 6, 7, 10), odd output channel counts, an odd number
of output pixels (the conv's two-pixel step), stride 2 and dilation 2, SAME padding on odd and even sizes (so
TFLite pads asymmetrically) and VALID, kernels 1x1, 3x3, 5x5, 4x4, 4x2, 10x4, 1x7 and kernels larger than their
input (depthwise pixels that are all border), Dense layers with K = 13, 8, 7, 6, 3, 576 and U = 8, 7, 6, 3, 2, 1
on one and on three rows, per-channel and per-tensor weights.  Fused RELU / RELU6 / RELU_N1_TO_1 are also set
on converted ops (flatbuffer edit) so that the clamp bounds fall inside the int8 range.  Weight surgery before
conversion reaches the requantization variants: pruned (all-zero) channels with huge biases (re-encoded so that
they cannot veto the fast forms), huge biases on live channels (no SMMUL), weights so large that the multiplier
exceeds 1 (left shift, no fast rounding), a single-rounding total shift of exactly 32, FC weights large enough
for the SXTB16 kernel instead of the paired one.

The generated kernel source is parsed to prove that each conv / depthwise / FC op really went through a
microkernel (not the TE fallback), and the microkernel call arguments (shapes, padding, flags) are checked to
cover all of the above.  The Cortex-M4 runs (one QEMU run per model) are the `heavy` test."""

import importlib
import os
import re
import sys
import tarfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402

# The module fixtures train and compile a dozen models (~170 s of a worker on 2 shared cores): out of the
# fast loop, still in every full run (CI).
pytestmark = pytest.mark.heavy

N_IMAGES = 24

RQ_LSHIFT, RQ_SMMUL, RQ_FAST = 1, 2, 4      # the TVMGEN_RQ_* flags of microkernels.h

# the microkernels an op may run (FULLY_CONNECTED: two outputs per SMLAD, or the SXTB16 kernel when an odd
# output's sum could reach 2^23)
MK_OF_OP = {"CONV_2D": {"tvmgen_mk_conv"}, "DEPTHWISE_CONV_2D": {"tvmgen_mk_dwconv"},
            "FULLY_CONNECTED": {"tvmgen_mk_fc", "tvmgen_mk_fc_pair"}}
MK_FAMILY = set().union(*MK_OF_OP.values())

# TFLite's ActivationFunctionType
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


# ---------------------------------------------------------------------------------------------------------------
# Models.  Comments give each layer's input -> output shape and the case it is there for.

def _conv_tails(shape):
    """CONV_2D with C and OC in 1, 3, 5, 6, 7, an odd number of pixels (7x5), 5x5 / 3x3 / 10x4 / 1x1 kernels."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(11)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(3, 5, padding="same", activation="relu")(x)     # 7x5x1 -> 7x5x3: C=1, pad 2 on every edge
    x = L.Conv2D(5, 3, padding="same", dilation_rate=2)(x)       # -> 7x5x5: dilation 2, pad 2
    x = L.Conv2D(7, (10, 4), padding="same")(x)                  # -> 7x5x7: K=200, pads 4/5 rows, 1/2 cols
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu6")(x)  # -> 4x3x6: stride 2, odd input
    return keras.Model(inp, L.Conv2D(1, 1)(x))                   # -> 4x3x1: 1x1, C=6, OC=1


def _conv_geometry(shape):
    """CONV_2D with C % 4 == 0 (im2col in whole groups), VALID, even kernels, stride 2 on even inputs, 1x7."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(12)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(8, 5, padding="valid", name="amp")(x)           # 14x18x4 -> 10x14x8: 5x5 VALID, C=4
    x = L.Conv2D(8, 4, padding="same", activation="relu")(x)     # -> 10x14x8: 4x4 SAME, pads 1/2 both axes
    x = L.Conv2D(6, 3, strides=2, padding="same")(x)             # -> 5x7x6: stride 2, even input, pads 0/1
    x = L.Conv2D(5, (1, 7), padding="valid", activation="relu6")(x)  # -> 5x1x5: 1x7 VALID, 5 pixels
    return keras.Model(inp, L.Conv2D(3, (3, 1), strides=2)(x))   # -> 2x1x3: stride 2 VALID, C=5, OC=3


def _conv_wide(shape):
    """CONV_2D whose odd channel 1 has K = 264 / 297 weights of full magnitude on inputs with zero point -128:
    |x - zp| sum |w| can reach 2^23, so no packed channel pairs (the SXTB16 kernel), with K4 % 8 = 0 and 4."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(20)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(33, (4, 3), padding="same", activation="relu", name="cw_a")(x)  # 5x7x22 -> 5x7x33: K=264
    return keras.Model(inp, L.Conv2D(3, 3, strides=2, padding="same", name="cw_b")(x))  # -> 3x4x3: K=297


def _conv_wide_surgery(model):
    for name in ("cw_a", "cw_b"):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        w[..., 1] = 0.05 * np.sign(np.random.RandomState(6).randn(*w.shape[:-1]))   # all quantize to +-127
        layer.set_weights([w, b])


def _depthwise6(shape):
    """DEPTHWISE_CONV_2D with C=6 and C=10 (one or two groups of four and a tail of 2), interior and border
    pixels, even kernels, dilation 2, stride 2 on odd and even sizes, kernels wider than the input; Dense U=7."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(13)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)   # 7x5x6: interior 5x3 and a border ring
    x = L.DepthwiseConv2D((4, 2), padding="same")(x)             # pads 1/2 rows, 0/1 cols
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x)  # dilation 2: interior 3x1
    x = L.DepthwiseConv2D((1, 7), padding="same", activation="relu6")(x)  # 1x7 on 5 cols: all border
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)       # -> 4x3x6: stride 2, odd input
    x = L.Conv2D(10, 1)(x)                                       # -> 4x3x10
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)  # -> 2x2x10: pads 0/1 rows
    x = L.DepthwiseConv2D(5, padding="same")(x)                  # 5x5 on 2x2: no interior pixel
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(7)(x))                       # K=40, U=7


def _depthwise_tails(shape):
    """DEPTHWISE_CONV_2D with C=3, 5, 7 and 1 (tail only, one group + tail), 5x5 VALID, 1x7, stride 2 VALID;
    Dense U=1."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(14)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.DepthwiseConv2D(5, padding="valid", name="amp")(x)     # 9x12x3 -> 5x8x3: VALID, C=3 (tail only)
    x = L.Conv2D(5, 1)(x)                                        # -> 5x8x5
    x = L.DepthwiseConv2D((1, 7), padding="same", activation="relu6")(x)  # C=5: pads 3/3 cols
    x = L.Conv2D(7, 1, activation="relu")(x)                     # -> 5x8x7
    x = L.DepthwiseConv2D(3, strides=2, padding="valid")(x)      # -> 2x3x7: C=7, stride 2 VALID
    x = L.Conv2D(1, 1)(x)                                        # -> 2x3x1
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)   # C=1: 2x3, all border
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(1)(x))                       # K=6, U=1


def _dense(shape):
    """FULLY_CONNECTED on 3 rows (B=3, keep_num_dims) and after a flatten: K=13, 8, 6, 7, 3 (tails of 1, 0, 2, 3
    inputs; K=3 has no whole group of four), U=8, 2, 7, 6, 3, 1."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(15)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Dense(8, activation="relu6", name="d_first")(x)       # 3x13 -> 3x8 (output 2: total shift 32)
    x = L.Dense(2, activation="relu")(x)                         # 3x8 -> 3x2: K=8, U=2
    x = L.Flatten()(x)
    x = L.Dense(7, name="amp")(x)                                # K=6, U=7
    x = L.Dense(6)(x)                                            # K=7, U=6
    x = L.Dense(3)(x)                                            # K=6, U=3
    return keras.Model(inp, L.Dense(1)(x))                       # K=3, U=1


def _dense_wide(shape):
    """FULLY_CONNECTED with K=576 whose odd output 1 has weights of full magnitude (128 sum |w| >= 2^23: the
    SXTB16 kernel instead of the paired one) and whose output 0 has a multiplier in [0.25, 0.5) (total shift
    exactly 32: the rounding term in the low word)."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(19)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Flatten()(x)                                           # 8x9x8 -> 576
    x = L.Dense(3, activation="relu6", name="fw_wide")(x)        # K=576, U=3
    return keras.Model(inp, L.Dense(5)(x))                       # K=3, U=5


def _t32(w, b, unit, sat):
    """Dense layer right after the Rescaling (the converter folds the 1/255 into the weights, the input scale is
    1) with a RELU6 output.  Output `sat`: positive weights up to 200 keep it at 6, so the output scale is 6/255
    and its multiplier 200/127/6 ~ 0.26.  Output `unit` reads only the last 3 inputs, whose data is kept to
    0..4 (_small_tail), with weights 280, 90, 35: multiplier 280/127/6 ~ 0.37 (total shift 32), and its sums
    127 x + 41 y + 16 z give outputs all over the range, half of them rounding up."""
    w[:, sat] = np.abs(w[:, sat]) * (200.0 / np.abs(w[:, sat]).max())
    w[:, unit] = 0
    w[-3:, unit] = [280.0, 90.0, 35.0]
    b[unit] = 0


def _small_tail(X):
    """The data with the last three values of the last axis in 0..4 (see _t32)."""
    X = X.copy()
    X[..., -3:] %= 5
    return X


def _dense_surgery(model):
    layer = model.get_layer("d_first")
    w, b = layer.get_weights()
    _t32(w, b, 2, 0)
    layer.set_weights([w, b])
    _amplify("amp")(model)


def _dense_wide_surgery(model):
    layer = model.get_layer("fw_wide")
    w, b = layer.get_weights()
    _t32(w, b, 0, 2)
    w[:, 1] = 0.05 * np.sign(np.random.RandomState(5).randn(w.shape[0]))   # all quantize to +-127
    layer.set_weights([w, b])


def _amplify(*names, k=4.0):
    """Weight surgery: layers `names` with k times their weights (an output range wide enough for the clamp of
    a fused RELU_N1_TO_1 to lie inside the int8 range)."""
    def surgery(model):
        for name in names:
            layer = model.get_layer(name)
            w, b = layer.get_weights()
            layer.set_weights([w * k, b])
    return surgery


def _pruned(shape):
    """Layers with all-zero-weight (pruned) channels, some with huge biases: the re-encoded constant channels."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(17)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(6, 3, padding="same", activation="relu6", name="pr_conv")(x)   # 7x5x3 -> 7x5x6
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="pr_dw")(x)
    x = L.Conv2D(5, 1, name="pr_pw")(x)                                         # no activation
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(7, activation="relu6", name="pr_fc")(x))


def _pruned_surgery(model):
    """Zero some output channels' weights (after training, before conversion) and give some huge biases."""
    w, b = model.get_layer("pr_conv").get_weights()      # [KH, KW, C, OC]
    w[..., 1] = 0
    b[1] = 1e6                                           # -> TFLite's bias clamp (2^30): saturates at 6
    w[..., 4] = 0
    b[4] = -1e6                                          # saturates at 0
    model.get_layer("pr_conv").set_weights([w, b])
    w, b = model.get_layer("pr_dw").get_weights()        # [KH, KW, C, 1]
    w[:, :, 2, :] = 0
    b[2] = 1e6
    w[:, :, 5, :] = 0
    b[5] = 0.7                                           # a constant inside the output range
    model.get_layer("pr_dw").set_weights([w, b])
    w, b = model.get_layer("pr_pw").get_weights()
    w[..., 0] = 0
    b[0] = 0.3
    w[..., 3] = 0
    b[3] = 0.0
    model.get_layer("pr_pw").set_weights([w, b])
    w, b = model.get_layer("pr_fc").get_weights()        # [K, U]
    w[:, 3] = 0
    b[3] = 1e6
    w[:, 6] = 0
    b[6] = -0.2
    model.get_layer("pr_fc").set_weights([w, b])


def _requant(shape):
    """Requantization variants: multiplier > 1 (weights x3000 under a RELU6 output: left shift, no fast
    rounding) and huge biases on live channels (sum bound >= 2^30: no SMMUL)."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(18)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(5, 3, padding="same", activation="relu6", name="rq_conv_lsh")(x)    # 7x5x3 -> 7x5x5
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="rq_dw_lsh")(x)
    x = L.Conv2D(6, 1, activation="relu6", name="rq_pw_lsh_big")(x)                # -> 7x5x6
    x = L.Conv2D(4, 3, padding="same", activation="relu6", name="rq_conv_big")(x)   # -> 7x5x4
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="rq_dw_big")(x)  # C=4: no tail
    return keras.Model(inp, L.Conv2D(3, 1)(x))


def _requant_surgery(model):
    def scale_weights(name, ch, k=3000.0):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        # positive, so that the RELU6 output saturates (output scale 6/255 whatever the other channels do)
        if "depthwise" in type(layer).__name__.lower():
            w[:, :, ch, :] = np.abs(w[:, :, ch, :]) * k  # [KH, KW, C, 1]
        else:
            w[..., ch] = np.abs(w[..., ch]) * k          # [KH, KW, C, OC]
        layer.set_weights([w, b])

    def big_bias(name, ch):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        b[ch] = 1e6                                      # a live channel at TFLite's bias clamp (2^30)
        layer.set_weights([w, b])

    scale_weights("rq_conv_lsh", 0)
    scale_weights("rq_dw_lsh", 1)
    scale_weights("rq_pw_lsh_big", 3)
    big_bias("rq_pw_lsh_big", 2)
    big_bias("rq_conv_big", 0)
    big_bias("rq_dw_big", 3)


def _fuse_activations(buf, cycle):
    """The converted flatbuffer with fused activations set on its conv / depthwise / FC ops that have none,
    taking `cycle`'s entries in turn: the converter only fuses RELU / RELU6 where the calibrated range already
    ends at 0 / 6, so only this way the clamp bounds fall inside the int8 range (lo > -128, hi < 127)."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(buf))
    codes = [model.operatorCodes[op.opcodeIndex] for op in model.subgraphs[0].operators]
    wanted = {fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D, fb.BuiltinOperator.FULLY_CONNECTED}
    k = 0
    for op, code in zip(model.subgraphs[0].operators, codes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) not in wanted:
            continue
        if op.builtinOptions.fusedActivationFunction == ACT_NONE:
            op.builtinOptions.fusedActivationFunction = cycle[k % len(cycle)]
            k += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


FUSE = (ACT_RELU_N1_TO_1, ACT_RELU, ACT_NONE, ACT_RELU6)


def _case(build, shape, surgery=None, per_channel=True, fuse=None, require=(), data=None):
    return {"build": build, "shape": shape, "surgery": surgery, "per_channel": per_channel, "fuse": fuse,
            "require": set(require), "data": data}


# every conv / depthwise / FC op of every model must run a microkernel; `require`: ones that must occur
CASES = {
    "conv_tails": _case(_conv_tails, (7, 5, 1), fuse=FUSE),
    "conv_tails_pt": _case(_conv_tails, (7, 5, 1), per_channel=False),
    "conv_geometry": _case(_conv_geometry, (14, 18, 4), _amplify("amp"), fuse=FUSE),
    "conv_wide": _case(_conv_wide, (5, 7, 22), _conv_wide_surgery),
    "dw6": _case(_depthwise6, (7, 5, 6), fuse=FUSE),
    "dw6_pt": _case(_depthwise6, (7, 5, 6), per_channel=False),
    "dw_tails": _case(_depthwise_tails, (9, 12, 3), _amplify("amp"), fuse=FUSE),
    "dense": _case(_dense, (3, 13), _dense_surgery, fuse=FUSE, require={"tvmgen_mk_fc_pair"}, data=_small_tail),
    "dense_pt": _case(_dense, (3, 13), per_channel=False),       # (a 280 weight would zero all others)
    "dense_wide": _case(_dense_wide, (8, 9, 8), _dense_wide_surgery, require={"tvmgen_mk_fc"}, data=_small_tail),
    "pruned": _case(_pruned, (7, 5, 3), _pruned_surgery),
    "requant": _case(_requant, (7, 5, 3), _requant_surgery),
}


# ---------------------------------------------------------------------------------------------------------------
# The generated kernel source: which microkernel each call runs, with which literal arguments.

_KERNEL_RE = re.compile(r"^void (tvmgen_\w+)\([^)]*\) \{\n(.*?)^\}", re.M | re.S)
_MK_DEF_RE = re.compile(r"TVMGEN_MK_INLINE int32_t (tvmgen_mk_\w+)\(([^)]*)\)\s*\{")
_MK_CALL_RE = re.compile(r"\b(tvmgen_mk_\w+)\(([^;]*)\);")


def microkernel_calls(mlf_tar):
    """(metadata, {op index: (microkernel, {parameter name: value})}) for every kernel call of the MLF that runs
    a microkernel, read from the generated codegen/host/src/*_lib1.c: the kernel definitions and the
    microkernels' own signatures (in the header text it includes), so the shapes, padding and flags each call
    passes as literals are known by their parameter names (H, W, C, ..., PT, PL, izp, ozp, lo, hi, flags)."""
    import json
    with tarfile.open(mlf_tar) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
        src = tar.extractfile("codegen/host/src/%s_lib1.c" % meta["model_name"]).read().decode()
    params = {fn: [p.split()[-1].lstrip("*") for p in plist.split(",")] for fn, plist in _MK_DEF_RE.findall(src)}
    bodies = dict(_KERNEL_RE.findall(src))
    out = {}
    for c in meta["calls"]:
        m = _MK_CALL_RE.search(bodies.get(c["kernel"], ""))
        if m is None:
            continue
        fn = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")]
        if fn in MK_FAMILY:
            assert len(params.get(fn, ())) == len(args), (mlf_tar, fn, args, params.get(fn))
        names = params.get(fn, ())
        out[c["op_index"]] = (fn, {n: int(a) for n, a in zip(names, args) if re.fullmatch(r"-?\d+", a)})
    return meta, out


@pytest.fixture(scope="module", autouse=True)
def _dwconv_for_depthwise():
    """The tests below are about tvmgen_mk_dwconv (every tail case of its loops): TINYML_DW3=0 keeps it for the 3x3
    stride-1 layers that tvmgen_mk_dw3 takes by default; the dw3 tests at the end build the same models with it."""
    before = os.environ.get("TINYML_DW3")
    os.environ["TINYML_DW3"] = "0"
    yield
    if before is None:
        os.environ.pop("TINYML_DW3", None)
    else:
        os.environ["TINYML_DW3"] = before


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{case: (tflite path, model inputs)}: the Keras models trained once (variants of a model share it), weight
    surgery applied, converted to int8, activations fused where asked."""
    d = tmp_path_factory.mktemp("mk_models")
    rs = np.random.RandomState(0)
    built, out = {}, {}
    for name, case in CASES.items():
        key = (case["build"], case["shape"])
        if key not in built:
            X = rs.randint(0, 256, (N_IMAGES,) + case["shape"]).astype(np.uint8)
            if case["data"] is not None:
                X = case["data"](X)
            m = fit_briefly(case["build"](case["shape"]), X)
            built[key] = (m, X, m.get_weights())
        m, X, trained = built[key]
        m.set_weights(trained)
        if case["surgery"] is not None:
            case["surgery"](m)
        buf = convert_int8(m, X, per_channel=case["per_channel"])
        if case["fuse"]:
            buf = _fuse_activations(buf, case["fuse"])
        p = str(d / ("%s.tflite" % name))
        with open(p, "wb") as f:
            f.write(buf)
        out[name] = (p, as_input_dtype(X, "int8"))
    return out


@pytest.fixture(scope="module")
def mlfs(models, tmp_path_factory):
    """{case: (MLF tar, metadata, microkernel calls by op index)}."""
    from codegen.emit import mlf
    d = tmp_path_factory.mktemp("mk_mlf")
    out = {}
    for name, (path, _) in models.items():
        tar = str(d / ("%s.tar" % name))
        mlf.build_mlf(path, tar, model_name="mk_" + name)
        meta, calls = microkernel_calls(tar)
        out[name] = (tar, meta, calls)
    return out


def _assert_microkernels_used(case, path, calls):
    """Every conv / depthwise / FC op of the model ran one of its microkernels (not the TE fallback)."""
    from codegen.frontend import reader
    m = reader.load(path)
    seen = set()
    for op in m.ops:
        if op.type not in MK_OF_OP:
            continue
        assert op.index in calls, "%s: %s #%d did not run %s (TE fallback?)" % (
            case, op.type, op.index, " or ".join(sorted(MK_OF_OP[op.type])))
        assert calls[op.index][0] in MK_OF_OP[op.type], (case, op.index, op.type, calls[op.index])
        seen.add(calls[op.index][0])
    assert seen >= CASES[case]["require"], (case, sorted(seen))
    assert seen, case


def _describe(calls, op_index):
    if op_index in calls:
        fn, sc = calls[op_index]
        return "%s %s" % (fn, " ".join("%s=%d" % kv for kv in sc.items()))
    return "(no microkernel)"


def _assert_exact_on_cortex_m4(models, built, tmp_path):
    """Every (case, MLF tar, metadata, calls) of `built` equals tf.lite on the emulated Cortex-M4, tensor by
    tensor; the failures of all cases in one message."""
    from codegen.runners import exactness, qemu
    if not qemu.toolchain_available():
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm (%s)" % qemu.INSTALL_HINT)
    failures = []
    for case, tar, meta, calls in built:
        path, X = models[case]
        wd = tmp_path / case
        wd.mkdir()
        rep = exactness.compare(path, tar, X, str(wd), target="cortex-m4")
        print("%s: %r" % (case, rep))
        assert len(rep.checked_ops) == len(meta["calls"])
        if not rep.exact:
            failures.append("%s:\n%s" % (case, _mismatch_report(rep, calls)))
    assert not failures, "not bit-exact on the Cortex-M4:\n" + "\n".join(failures)


def _mismatch_report(rep, calls):
    lines = ["  %r: %s" % (mm, _describe(calls, mm.op_index)) for mm in rep.mismatches]
    if not rep.outputs_equal:
        lines.append("  model outputs differ")
    return "\n".join(lines)


@pytest.mark.parametrize("case", list(CASES))
def test_microkernels_bit_exact_on_host(models, mlfs, case, tmp_path):
    path, X = models[case]
    _, meta, calls = mlfs[case]
    _assert_microkernels_used(case, path, calls)
    for i in sorted(calls):
        print("  #%d %s" % (i, _describe(calls, i)))
    expected = {o["type"] for o in meta["ops"]} & set(MK_OF_OP)
    try:
        _, rep = check_exact(path, X, tmp_path, expected, model_name="mk_" + case)
    except AssertionError as e:
        from codegen.runners import exactness
        rep = exactness.compare(path, str(tmp_path / ("mk_%s.tar" % case)), X, str(tmp_path))
        raise AssertionError("%s not bit-exact on the host:\n%s\n(%s)" % (case, _mismatch_report(rep, calls), e))
    assert len(np.unique(rep.reference_outputs)) > 1, "constant model output"


def _all_calls(mlfs, *fns):
    return [sc for _, _, c in mlfs.values() for fn, sc in c.values() if fn in fns]


def _pads(sc):
    """(top, bottom, left, right) padding of a conv / depthwise call."""
    pb = (sc["OH"] - 1) * sc["SH"] + (sc["KH"] - 1) * sc["DH"] + 1 - sc["H"] - sc["PT"]
    pr = (sc["OW"] - 1) * sc["SW"] + (sc["KW"] - 1) * sc["DW"] + 1 - sc["W"] - sc["PL"]
    return sc["PT"], max(pb, 0), sc["PL"], max(pr, 0)


@pytest.mark.parametrize("kind", ["tvmgen_mk_conv", "tvmgen_mk_dwconv"])
def test_conv_microkernel_cases_are_covered(mlfs, kind):
    """The calls of all models together reach every tail case of the conv / depthwise loops."""
    calls = _all_calls(mlfs, kind)
    chans = sorted({sc["C"] for sc in calls})
    assert {sc["C"] % 4 for sc in calls} == {0, 1, 2, 3} and {1, 3, 5, 6, 7} <= set(chans), chans
    assert any(sc["SH"] == 2 and sc["SW"] == 2 for sc in calls), "stride 2"
    assert any(sc["DH"] == 2 and sc["DW"] == 2 for sc in calls), "dilation 2"
    assert any(min(_pads(sc)) > 0 for sc in calls), "padding on every edge"
    assert any(_pads(sc)[0] < _pads(sc)[1] for sc in calls), "more padding at the bottom"
    assert any(_pads(sc)[2] < _pads(sc)[3] for sc in calls), "more padding on the right"
    assert any(_pads(sc) == (0, 0, 0, 0) and sc["KH"] * sc["KW"] > 1 for sc in calls), "VALID"
    ks = {(sc["KH"], sc["KW"]) for sc in calls}
    assert {(3, 3), (5, 5), (1, 7)} <= ks and any(kh != kw for kh, kw in ks), sorted(ks)
    assert any(sc["lo"] > -128 for sc in calls) and any(sc["hi"] < 127 for sc in calls), "fused clamps"
    assert any(sc["izp"] != -128 for sc in calls), "input zero point"
    flags = sorted({sc["flags"] for sc in calls})
    for bit in (RQ_LSHIFT, RQ_SMMUL, RQ_FAST):
        assert any(f & bit for f in flags) and any(not f & bit for f in flags), (bit, flags)
    if kind == "tvmgen_mk_conv":
        assert {(10, 4), (1, 1)} <= ks, sorted(ks)
        assert {1, 3, 5, 7} <= {sc["OC"] for sc in calls} and any(sc["OC"] % 2 == 0 for sc in calls)
        assert any(sc["OH"] * sc["OW"] % 2 for sc in calls), "odd number of output pixels"
        assert any(sc["C"] % 4 == 0 and sc["KH"] * sc["KW"] > 1 for sc in calls), "im2col in whole groups"
        # the asm loop runs two groups of four per iteration when K4 % 8 == 0, else one
        assert {-(-sc["KH"] * sc["KW"] * sc["C"] // 4) % 2 for sc in calls} == {0, 1}
        # packed channel pairs (when the sums provably fit) and the SXTB16 kernel, each with K4 % 8 = 0 and 4
        pair = getattr(importlib.import_module("codegen.lowering.microkernels"), "CONV_PAIR", None)
        if pair is not None:
            for on in (True, False):
                assert {-(-sc["KH"] * sc["KW"] * sc["C"] // 4) % 2 for sc in calls
                        if bool(sc["flags"] & pair) == on} == {0, 1}, ("CONV_PAIR", on)
        # the loop's shapes: one or two steps without a loop (K4 = 4, 8), two per iteration and an odd one after
        # (K4 = 8n + 4 >= 12), two per iteration (K4 = 8n >= 16)
        k4s = {-(-sc["KH"] * sc["KW"] * sc["C"] // 4) * 4 for sc in calls}
        assert {4, 8} <= k4s and any(k % 8 == 4 and k >= 12 for k in k4s) and any(
            k % 8 == 0 and k >= 16 for k in k4s), sorted(k4s)
        # small and large windows over channel counts that are not a multiple of 4 (first-layer im2col)
        assert {sc["KH"] * sc["KW"] * sc["C"] <= 64 for sc in calls if sc["C"] % 4} == {True, False}
    else:
        assert {6, 10} <= set(chans), chans

        def interior(sc):
            rows = (sc["H"] - 1 + sc["PT"] - (sc["KH"] - 1) * sc["DH"]) // sc["SH"] + 1 - (
                sc["PT"] + sc["SH"] - 1) // sc["SH"]
            cols = (sc["W"] - 1 + sc["PL"] - (sc["KW"] - 1) * sc["DW"]) // sc["SW"] + 1 - (
                sc["PL"] + sc["SW"] - 1) // sc["SW"]
            return max(rows, 0) * max(cols, 0)
        assert any(interior(sc) == 0 for sc in calls), "a depthwise layer with border pixels only"
        assert any(0 < interior(sc) < sc["OH"] * sc["OW"] for sc in calls), "interior and border pixels"
        assert any(interior(sc) == sc["OH"] * sc["OW"] for sc in calls), "interior pixels only"


def test_fc_microkernel_cases_are_covered(mlfs):
    pair = _all_calls(mlfs, "tvmgen_mk_fc_pair")
    both = pair + _all_calls(mlfs, "tvmgen_mk_fc")
    assert _all_calls(mlfs, "tvmgen_mk_fc"), "the SXTB16 FC kernel"
    assert any(sc["K"] == 13 for sc in both) and {1, 7} <= {sc["U"] for sc in both}
    assert {sc["U"] % 4 for sc in pair} == {0, 1, 2, 3}, sorted({sc["U"] for sc in pair})
    assert {sc["K"] % 4 for sc in pair} == {0, 1, 2, 3}, sorted({sc["K"] for sc in pair})
    assert any(sc["K"] < 4 for sc in pair), "no whole group of four inputs"
    assert any(sc["K"] % 8 >= 4 for sc in pair) and any(sc["K"] >= 8 and sc["K"] % 8 < 4 for sc in pair)
    assert any(sc["B"] > 1 for sc in pair)
    assert any(sc["lo"] > -128 for sc in both) and any(sc["hi"] < 127 for sc in both), "fused clamps"
    # TVMGEN_RQS_T32 (some output's total shift is exactly 32) on and off
    assert {sc["flags"] & 1 for sc in pair} == {0, 1}, [sc["flags"] for sc in pair]
    assert any(sc["flags"] & 1 for sc in _all_calls(mlfs, "tvmgen_mk_fc"))


def test_pruned_channels_keep_the_fast_requantization(models, mlfs):
    """The pruned layers really have all-zero channels, some with a bias at TFLite's clamp; such a channel must
    not veto SMMUL / fast rounding (its re-encoding in microkernels.requant_double)."""
    from codegen.frontend import reader
    path, _ = models["pruned"]
    _, _, calls = mlfs["pruned"]
    m = reader.load(path)
    huge = []
    for op in m.ops:
        if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = np.abs(np.asarray(m.tensors[op.inputs[1]].data).astype(np.int64))
        b = np.abs(np.asarray(m.tensors[op.inputs[2]].data).astype(np.int64))
        absw = w[0].reshape(-1, w.shape[-1]).sum(0) if op.type == "DEPTHWISE_CONV_2D" else \
            w.reshape(w.shape[0], -1).sum(1)
        assert (absw == 0).any(), (op.index, absw)
        fn, sc = calls[op.index]
        print("  #%d %s pruned channels %s, bias %s, flags %d" % (op.index, fn, np.flatnonzero(absw == 0).tolist(),
                                                                 b.tolist(), sc["flags"]))
        if b[absw == 0].max() >= 2 ** 29:
            huge.append(op.type)
            assert b[absw > 0].max() < 2 ** 20, "the live channels have ordinary biases"
            assert sc["flags"] & RQ_SMMUL and sc["flags"] & RQ_FAST, (op.index, _describe(calls, op.index))
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= set(huge), huge


@pytest.mark.heavy
def test_microkernels_bit_exact_on_cortex_m4(models, mlfs, tmp_path):
    """Every model built with arm-none-eabi-gcc for the Cortex-M4F (the DSP / Thumb-2 asm paths) and run in QEMU
    once: the FNV-1a hash of every traced tensor and the outputs equal the reference's."""
    _assert_exact_on_cortex_m4(models, [(case, *mlfs[case]) for case in CASES], tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# The same models with the default depthwise choice: 3x3 stride-1 layers through tvmgen_mk_dw3 (the ring of
# channel-major rows), on its C and Thumb-2 paths and with every requantization variant above.

DW3_OF_OP = {"DEPTHWISE_CONV_2D": {"tvmgen_mk_dwconv", "tvmgen_mk_dw3"}}


class _dw3_on:
    def __enter__(self):
        self.before = os.environ.pop("TINYML_DW3", None)

    def __exit__(self, *exc):
        if self.before is not None:
            os.environ["TINYML_DW3"] = self.before


@pytest.fixture(scope="module")
def mlfs_dw3(models, tmp_path_factory):
    """{case: (MLF tar, metadata, microkernel calls)} of the models with a depthwise layer, TINYML_DW3 default."""
    from codegen.emit import mlf
    from codegen.frontend import reader
    d = tmp_path_factory.mktemp("mk_mlf_dw3")
    out = {}
    with _dw3_on():
        for name, (path, _) in models.items():
            if not any(op.type == "DEPTHWISE_CONV_2D" for op in reader.load(path).ops):
                continue
            tar = str(d / ("%s.tar" % name))
            mlf.build_mlf(path, tar, model_name="mk3_" + name)
            meta, calls = microkernel_calls(tar)
            out[name] = (tar, meta, calls)
    return out


def test_ring_kernel_cases_are_covered(mlfs_dw3):
    """The depthwise models reach tvmgen_mk_dw3 with channel counts 1, 4, 5, 6, odd widths and heights, padding,
    the requantization of its Thumb-2 loop and the C one (left shifts, the slow rounding), and every depthwise op
    still runs a microkernel."""
    calls = [sc for _, _, c in mlfs_dw3.values() for fn, sc in c.values() if fn == "tvmgen_mk_dw3"]
    assert calls, "no 3x3 stride-1 depthwise layer went through tvmgen_mk_dw3"
    for _, meta, c in mlfs_dw3.values():
        for o in meta["ops"]:
            if o["type"] in DW3_OF_OP:
                assert c.get(o["index"], ("-",))[0] in DW3_OF_OP[o["type"]], (o, c.get(o["index"]))
    # (C = 7 is test_fast_kernels' dw3_one_row_c7)
    assert {sc["C"] % 4 for sc in calls} >= {0, 1, 2}, sorted({sc["C"] for sc in calls})
    # odd widths and heights (the last column and row paths; even ones: test_fast_kernels' dw3 cases, VWW)
    assert any(sc["OW"] % 2 for sc in calls) and any(sc["OH"] % 2 for sc in calls)
    assert any(sc["PT"] and sc["PL"] for sc in calls), "padding"
    # the Thumb-2 loop's requantization (doubled sums, fast rounding with the zero point, the int8 range) and
    # models that take the C one (fused clamps: test_fast_kernels' dw3_odd_c_relu6)
    asm = RQ_FAST | 16 | 64                     # TVMGEN_RQ_FAST | TVMGEN_RQ_ZP | TVMGEN_RQ_DOUBLED
    assert any(sc["flags"] & (asm | RQ_LSHIFT) == asm and sc["lo"] == -128 and sc["hi"] == 127 for sc in calls)
    assert any(sc["flags"] & (asm | RQ_LSHIFT) != asm for sc in calls)
    flags = {sc["flags"] for sc in calls}
    for bit in (RQ_LSHIFT, RQ_FAST):
        assert any(f & bit for f in flags) and any(not f & bit for f in flags), (bit, sorted(flags))


@pytest.mark.parametrize("case", ["dw6", "dw6_pt", "dw_tails", "pruned", "requant"])
def test_ring_kernel_bit_exact_on_host(models, mlfs_dw3, case, tmp_path):
    from codegen.runners import exactness
    path, X = models[case]
    tar, meta, calls = mlfs_dw3[case]
    assert any(fn == "tvmgen_mk_dw3" for fn, _ in calls.values()), (case, calls)
    rep = exactness.compare(path, tar, X, str(tmp_path))
    assert rep.exact, "%s not bit-exact on the host:\n%s" % (case, _mismatch_report(rep, calls))


@pytest.mark.heavy
def test_ring_kernel_bit_exact_on_cortex_m4(models, mlfs_dw3, tmp_path):
    _assert_exact_on_cortex_m4(models, [(case, *mlf) for case, mlf in sorted(mlfs_dw3.items())], tmp_path)
