"""Pointwise ops bit-exact with tf.lite's reference kernels (BUILTIN_REF): the table-driven activations
(LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU), the broadcasting binary ops (MUL, SUB, MAXIMUM, MINIMUM, next to
ADD) and QUANTIZE's requantization between scales.

Exhaustive where the op allows it: a unary op's input covers all 256 int8/uint8 values, a binary op reads a
(1,256,1,1) and a (1,1,256,1) view of the same 256 values, i.e. every one of the 65536 input pairs.  Other
scales, zero points, fused activations, alpha values and TFLite's uint8 kernels are reached by editing the
converted flatbuffer (tensor quantization, op options, int8 -> uint8), which both the generated C and the
interpreter then run; small Keras conv models cover realistic 4-D broadcasting and converter output."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen import fuzz  # noqa: E402
from codegen.frontend import reader  # noqa: E402
from codegen.errors import ModelError  # noqa: E402
from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402

pytestmark = pytest.mark.heavy      # every case trains, converts and compiles a model (TVM + gcc): minutes; `pytest -m 'not heavy'` skips it


# ---------------------------------------------------------------------------------------------------------------
# Flatbuffer edits: the same graph with other quantization, options or TFLite's uint8 kernels.

# The flatbuffer edits are the fuzzer's (codegen.fuzz): one implementation for the op tests and the fuzzer.
_edit = fuzz.edit_flatbuffer
as_uint8_kernels = fuzz.as_uint8_kernels


def requantized(buf, changes):
    """`changes`: {tensor index: (scale, zero point)}."""
    def fn(model):
        for ti, (scale, zp) in changes.items():
            q = model.subgraphs[0].tensors[ti].quantization
            q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return _edit(buf, fn)


def with_options(buf, op_index, **fields):
    def fn(model):
        opts = model.subgraphs[0].operators[op_index].builtinOptions
        for k, v in fields.items():
            setattr(opts, k, v)
    return _edit(buf, fn)


def with_input_type(buf, dtype):
    """The model input retyped to int8/uint8, its zero point moved by 128, so that the QUANTIZE reading it
    requantizes from that type."""
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        g = model.subgraphs[0]
        t = g.tensors[g.inputs[0]]
        new = fb.TensorType.INT8 if dtype == "int8" else fb.TensorType.UINT8
        if t.type != new:
            t.type = new
            t.quantization.zeroPoint = [int(z) + (128 if dtype == "uint8" else -128)
                                        for z in t.quantization.zeroPoint]
    return _edit(buf, fn)


def all_values(dtype, rows=1):
    """Every int8/uint8 value once per row (a second row reversed), as a (rows, 256) model input."""
    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1).astype(dtype)
    return np.stack([x, x[::-1]][:rows])


# ---------------------------------------------------------------------------------------------------------------
# Keras models

def _unary(layer):
    """Input((256,)) -> one activation: fed every 8-bit value, the op's whole table is compared."""
    def build():
        import keras
        inp = keras.Input((256,), batch_size=1)
        return keras.Model(inp, layer()(inp))
    return build


def _pairs(fn):
    """Input((256,)) viewed as (1,256,1,1) and (1,1,256,1): fn of the two broadcasts to all 65536 pairs."""
    def build():
        import keras
        K = keras.ops
        inp = keras.Input((256,), batch_size=1)
        return keras.Model(inp, fn(K.reshape(inp, (1, 256, 1, 1)), K.reshape(inp, (1, 1, 256, 1))))
    return build


def _layers():
    import keras
    return keras.layers, keras.ops


def _mul_sub(shape=(8, 8, 3)):
    """MUL / SUB in a conv net: (1,H,W,C) * (1,1,1,C), (1,H,W,C) - (1,H,1,1), equal shapes with fused RELU /
    RELU6, per-channel and scalar constants (also as the first operand)."""
    import keras
    L, K = _layers()
    keras.utils.set_random_seed(11)
    H, W, C = shape
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    a = L.Conv2D(8, 3, padding="same")(x)
    g = L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(8, 1)(a))        # (1,1,1,C)
    y = L.Multiply()([a, g])
    r = L.AveragePooling2D((1, W))(L.Conv2D(1, 1)(a))                      # (1,H,1,1)
    z = L.ReLU()(L.Subtract()([y, r]))                                     # RELU fused into the SUB
    w = L.ReLU(6.0)(L.Multiply()([z, L.Conv2D(8, 1)(a)]))                  # RELU6 fused into the MUL
    c = K.multiply(w, np.linspace(-1, 2, 8).astype(np.float32))            # constant (C,)
    c = K.subtract(c, 0.25)                                                # scalar constant
    c = K.subtract(np.float32(0.5), c)                                     # constant first operand
    return keras.Model(inp, L.Conv2D(4, 1)(c))


def _max_min(shape=(8, 8, 3)):
    """MAXIMUM / MINIMUM in a conv net: equal shapes, (1,H,W,C) vs (1,1,1,C), scalar and (C,) constants."""
    import keras
    L, K = _layers()
    keras.utils.set_random_seed(12)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    a = L.Conv2D(8, 3, padding="same")(x)
    b = L.Conv2D(8, 1)(a)
    y = K.minimum(K.maximum(a, b), L.GlobalAveragePooling2D(keepdims=True)(b))
    y = K.minimum(K.maximum(y, 0.1), np.linspace(0, 1, 8).astype(np.float32))
    return keras.Model(inp, L.Conv2D(4, 1)(y))


def _low_rank(shape=(12, 6)):
    """2-D and 3-D operands: (1,T,C) * (1,1,C), (1,T,C) - (C,) constant, (1,N) x (1,N) and (1,N) vs scalar."""
    import keras
    L, K = _layers()
    keras.utils.set_random_seed(13)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    a = L.Conv1D(6, 3, padding="same")(x)                                  # (1,T,C)
    y = L.Multiply()([a, L.GlobalAveragePooling1D(keepdims=True)(a)])      # (1,T,C) * (1,1,C)
    y = K.subtract(y, np.linspace(-0.5, 0.5, 6).astype(np.float32))
    v = L.Dense(16)(L.Flatten()(y))                                        # (1,N)
    v = K.maximum(L.Multiply()([v, L.Dense(16)(v)]), -0.2)
    return keras.Model(inp, L.Dense(4)(K.minimum(v, L.Dense(16)(v))))


def _activations(shape=(8, 8, 3)):
    """The four table activations inside a conv net (4-D tensors, converter-chosen scales)."""
    import keras
    L, K = _layers()
    keras.utils.set_random_seed(14)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Activation("hard_swish")(L.Conv2D(8, 3, padding="same")(x))
    x = L.LeakyReLU(0.1)(L.Conv2D(8, 3, padding="same")(x))
    x = L.Activation("tanh")(L.Conv2D(8, 1)(x))
    x = L.Activation("sigmoid")(L.Conv2D(8, 1)(x))
    return keras.Model(inp, L.Conv2D(4, 1)(x))


def _requant():
    """LOGISTIC and TANH have fixed output scales, so MAXIMUM of them needs QUANTIZE int8 -> int8 on both."""
    import keras
    L, K = _layers()
    inp = keras.Input((256,), batch_size=1)
    return keras.Model(inp, K.maximum(L.Activation("sigmoid")(inp), L.Activation("tanh")(inp)))


def _keras_op(name):
    """keras.ops.<name>, looked up when the model is built (keras is imported lazily)."""
    def call(*args):
        import keras
        return getattr(keras.ops, name)(*args)
    return call


def _layer(name, *args):
    def make():
        import keras
        return getattr(keras.layers, name)(*args)
    return make


# name: builder of the Keras model
MODELS = {
    "LOGISTIC": _unary(_layer("Activation", "sigmoid")),
    "TANH": _unary(_layer("Activation", "tanh")),
    "HARD_SWISH": _unary(_layer("Activation", "hard_swish")),   # TF 2.21 converts it to HARD_SWISH
    "LEAKY_RELU": _unary(_layer("LeakyReLU", 0.2)),
    "RELU": _unary(_layer("ReLU")),
    "MUL_pairs": _pairs(_keras_op("multiply")),
    "SUB_pairs": _pairs(_keras_op("subtract")),
    "MAXIMUM_pairs": _pairs(_keras_op("maximum")),
    "MINIMUM_pairs": _pairs(_keras_op("minimum")),
    "requant": _requant,
}
CONV_MODELS = {"mul_sub": (_mul_sub, (8, 8, 3)), "max_min": (_max_min, (8, 8, 3)),
               "low_rank": (_low_rank, (12, 6)), "activations": (_activations, (8, 8, 3))}


class Converted:
    """Converts each model on first use (once per module run) and keeps the flatbuffers."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.cache = {}

    def get(self, name, io="int8"):
        key = (name, io)
        if key not in self.cache:
            if name in CONV_MODELS:
                fn, shape = CONV_MODELS[name]
                X = np.random.RandomState(0).randint(0, 256, (24,) + shape).astype(np.uint8)
                if (name, "keras") not in self.cache:   # the int8 and uint8 variants share one trained model
                    self.cache[(name, "keras")] = fit_briefly(fn(shape), X)
                self.cache[key] = (convert_int8(self.cache[(name, "keras")], X, io, io), as_input_dtype(X, io))
            else:
                # calibration over [-4, 4]: the activations' interesting range and a few saturated values
                X = np.random.RandomState(1).uniform(-4, 4, (16, 256)).astype(np.float32)
                X[0, :2] = (-4, 4)
                self.cache[key] = (convert_int8(MODELS[name](), X, io, io), all_values(io))
        return self.cache[key]

    def write(self, buf, tag):
        path = os.path.join(self.workdir, "%s.tflite" % tag)
        with open(path, "wb") as f:
            f.write(buf)
        return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return Converted(str(tmp_path_factory.mktemp("pointwise_models")))


def _ops(path):
    m = reader.load(path)
    return m, [op.type for op in m.ops]


def _exact(converted, buf, inputs, tmp_path, tag, must_have):
    """Writes the model, asserts `must_have` ops are in it, and checks the C against BUILTIN_REF tensor by
    tensor; returns the report."""
    path = converted.write(buf, tag)
    m, types = _ops(path)
    print("%s ops: %s" % (tag, types))
    assert set(must_have) <= set(types), (must_have, types)
    os.makedirs(str(tmp_path), exist_ok=True)
    _, rep = check_exact(path, inputs, tmp_path, must_have, model_name="pw")
    return rep


def _op(m, op_type):
    return next(op for op in m.ops if op.type == op_type)


# ---------------------------------------------------------------------------------------------------------------
# Unary ops: the whole 256-entry table

UNARY = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU")


@pytest.mark.parametrize("io", ["int8", "uint8"])
@pytest.mark.parametrize("op_type", UNARY)
def test_unary_table_all_256_values(converted, op_type, io, tmp_path):
    """As converted, int8 and uint8 I/O (uint8: QUANTIZE uint8 -> int8 in front, int8 -> uint8 behind): every
    input value; then TFLite's uint8 kernel of the op on the same model made all-uint8."""
    buf, X = converted.get(op_type, io)
    want = [op_type] + (["QUANTIZE"] if io == "uint8" else [])
    rep = _exact(converted, buf, X, tmp_path, "%s_%s" % (op_type, io), want)
    assert len(np.unique(rep.reference_outputs)) > 16
    if io == "int8":
        _exact(converted, as_uint8_kernels(buf), all_values("uint8"), tmp_path / "u8", op_type + "_u8kernel",
               [op_type])


# (input scale, input zp), (output scale, output zp) per op; None keeps the converter's value
REQUANT = {
    "LOGISTIC": [((0.002, 100), None), ((0.2, -128), None), ((0.05, 127), None)],
    "TANH": [((0.002, 100), (0.004, -20)), ((0.2, -128), None), ((0.01, 3), (1 / 128, 0))],
    "HARD_SWISH": [((0.002, 100), (0.001, -120)), ((0.1, -10), (0.03, -100)), ((0.03, 60), (0.5, 0))],
    "LEAKY_RELU": [((0.002, 100), (0.004, -20)), ((0.1, -10), (0.03, 90))],
}


@pytest.mark.parametrize("op_type", UNARY)
def test_unary_table_other_scales(converted, op_type, tmp_path):
    """The same model with other input/output scales and zero points (and LEAKY_RELU alphas 0, 1.7 and -0.5 on
    equal scales, where the negative multiplier meets exact rounding ties), every input value each."""
    buf, X = converted.get(op_type)
    m, _ = _ops(converted.write(buf, op_type))
    op = _op(m, op_type)
    variants = []
    for k, (iq, oq) in enumerate(REQUANT[op_type]):
        changes = {op.inputs[0]: iq}
        if oq is not None:
            changes[op.outputs[0]] = oq
        variants.append(("q%d" % k, requantized(buf, changes)))
    if op_type == "LEAKY_RELU":
        same = requantized(buf, {op.inputs[0]: (0.05, 3), op.outputs[0]: (0.05, 3)})
        for alpha in (0.0, 1.7, -0.5):
            variants.append(("alpha%g" % alpha, with_options(same, op.index, alpha=alpha)))
    for tag, b in variants:
        _exact(converted, b, X, tmp_path / tag, "%s_%s" % (op_type, tag), [op_type])


def test_unary_tables_match_interpreter_over_scales(converted):
    """The table builders themselves against the interpreter, without C: 150 random input/output quantizations
    per op and type (int8 and uint8 kernels), all 256 inputs each."""
    import tensorflow as tf
    from codegen.lowering.ops import activation as A

    class Q:
        def __init__(self, scale, zp, dtype):
            self.scale, self.zero_point, self.dtype = np.array([scale], np.float32), np.array([zp]), dtype

    rs = np.random.RandomState(7)
    checked = 0
    for op_type in UNARY:
        base, _ = converted.get(op_type)
        for dtype in ("int8", "uint8"):
            b0 = as_uint8_kernels(base) if dtype == "uint8" else base
            m, _ = _ops(converted.write(b0, "sweep_%s_%s" % (op_type, dtype)))
            op = _op(m, op_type)
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
            for _ in range(150):
                iq = (np.float32(10 ** rs.uniform(-3.5, 0)), int(rs.randint(lo, hi + 1)))
                oq = (1 / 256, lo) if op_type == "LOGISTIC" else (np.float32(10 ** rs.uniform(-3, 0)),
                                                                   int(rs.randint(lo, hi + 1)))
                x_t, o_t = Q(iq[0], iq[1], dtype), Q(oq[0], oq[1], dtype)
                b = requantized(b0, {op.inputs[0]: iq, op.outputs[0]: oq})
                if op_type == "LEAKY_RELU":
                    alpha = float(np.float32(rs.choice([0.0, 0.01, 0.1, 0.3, 1.0, 1.5, -0.3, rs.uniform(-1, 2)])))
                    b = with_options(b, op.index, alpha=alpha)
                    value = A.leaky_relu_value(x_t, o_t, alpha)
                elif op_type == "HARD_SWISH":
                    if A._hard_swish_params(x_t, o_t)[1] > 0:    # TFLite rejects these (see the error test)
                        continue
                    value = A.hard_swish_value(x_t, o_t)
                else:
                    value = {"LOGISTIC": A.logistic_value, "TANH": A.tanh_value}[op_type](x_t, o_t)
                it = tf.lite.Interpreter(model_content=b, experimental_op_resolver_type=(
                    tf.lite.experimental.OpResolverType.BUILTIN_REF))
                it.allocate_tensors()
                it.set_tensor(it.get_input_details()[0]["index"], all_values(dtype))
                it.invoke()
                ref = it.get_tensor(it.get_output_details()[0]["index"]).ravel().astype(int)
                mine = np.array([value(int(v)) for v in all_values(dtype)[0]])
                assert (mine == ref).all(), (op_type, dtype, iq, oq, np.flatnonzero(mine != ref)[:8])
                checked += 1
    print("%d quantizations x 256 values equal" % checked)
    assert checked > 1000


# ---------------------------------------------------------------------------------------------------------------
# Binary ops: every pair of 8-bit values, broadcast

BINARY = ("MUL", "SUB", "MAXIMUM", "MINIMUM")


def _binary_variants(buf, m, op_type):
    """(tag, flatbuffer): other scales/zero points for a, b and the output, fused activations, uint8 kernels."""
    op = _op(m, op_type)
    a, b, o = op.inputs[0], op.inputs[1], op.outputs[0]
    out = [("uint8_kernel", as_uint8_kernels(buf))]
    if op_type in ("MAXIMUM", "MINIMUM"):     # raw compare: one quantization for all three
        return out + [("q", requantized(buf, {a: (0.07, 33), b: (0.07, 33), o: (0.07, 33)}))]
    out += [("q_small", requantized(buf, {a: (0.02, -7), b: (0.005, 90), o: (0.03, 5)})),
            ("q_large", requantized(buf, {a: (0.5, 120), b: (0.09, -128), o: (0.25, -60)}))]
    if op_type == "MUL":
        # in1_scale * in2_scale / out_scale is a float expression in TFLite; computed in double, the multiplier
        # differs in its low bits and 14 of these 65536 products round differently
        out.append(("q_float_multiplier", requantized(buf, {a: (0.008749891, 70), b: (0.030356875, 10),
                                                            o: (0.05111231, 3)})))
    if op_type == "SUB":
        # input2's multiplier is (2^20 + 1) * 2^10, so its products land on exact SRDHM ties: subtracting the
        # scaled input2 (TF 2.21) and adding it with a negated multiplier (older TFLite) round them differently
        out.append(("q_ties", requantized(buf, {a: (1.0, 0), b: ((2 ** 20 + 1) / 2 ** 21, 0), o: (1.0, 0)})))
    acts = {"MUL": ("RELU6", "RELU_N1_TO_1"), "SUB": ("RELU", "RELU6")}[op_type]
    from tensorflow.lite.python import schema_py_generated as fb
    q = requantized(buf, {a: (0.02, -7), b: (0.005, 90), o: (0.01, -20)})
    for act in acts:
        out.append(("act_" + act, with_options(q, op.index,
                                               fusedActivationFunction=getattr(fb.ActivationFunctionType, act))))
    return out


@pytest.mark.parametrize("op_type", BINARY)
def test_binary_all_pairs(converted, op_type, tmp_path):
    """op((1,256,1,1), (1,1,256,1)) over all 65536 pairs of values: as converted (int8 and uint8 I/O), with
    other quantizations, fused activations and TFLite's uint8 kernel."""
    buf, X = converted.get(op_type + "_pairs")
    path = converted.write(buf, op_type + "_pairs")
    m, types = _ops(path)
    assert types.count("RESHAPE") == 2 and op_type in types, types
    _exact(converted, buf, X, tmp_path / "as_converted", op_type + "_pairs", [op_type])
    b8, X8 = converted.get(op_type + "_pairs", "uint8")
    _exact(converted, b8, X8, tmp_path / "io_uint8", op_type + "_pairs_u8io", [op_type, "QUANTIZE"])
    for tag, b in _binary_variants(buf, m, op_type):
        inputs = all_values("uint8") if tag == "uint8_kernel" else X
        _exact(converted, b, inputs, tmp_path / tag, "%s_%s" % (op_type, tag), [op_type])


@pytest.mark.parametrize("io", ["int8", "uint8"])
@pytest.mark.parametrize("case", ["mul_sub", "max_min", "low_rank", "activations"])
def test_pointwise_in_conv_models(converted, case, io, tmp_path):
    """Keras conv models: 4-D broadcasting (1,H,W,C) op (1,1,1,C) / (1,H,1,1), 3-D and 2-D operands, constant
    operands on either side, fused activations, per-tensor scales chosen by the converter."""
    expected = {"mul_sub": {"MUL", "SUB"}, "max_min": {"MAXIMUM", "MINIMUM"},
                "low_rank": {"MUL", "SUB", "MAXIMUM", "MINIMUM"},
                "activations": {"HARD_SWISH", "LEAKY_RELU", "TANH", "LOGISTIC"}}[case]
    buf, X = converted.get(case, io)
    m, types = _ops(converted.write(buf, "%s_%s" % (case, io)))
    for op in m.ops:
        if op.type in expected:
            print("  #%d %s %s %s" % (op.index, op.type, [m.tensors[i].shape for i in op.inputs], op.options))
    if case == "mul_sub":
        acts = {op.options.get("activation") for op in m.ops if op.type in expected}
        assert {"RELU", "RELU6"} <= acts, acts          # the converter fused both activations
        consts = [op for op in m.ops if op.type in expected and any(m.tensors[i].is_const for i in op.inputs)]
        assert any(m.tensors[op.inputs[0]].is_const for op in consts) and len(consts) >= 3
    if case == "low_rank":
        ranks = {len(m.tensors[op.inputs[0]].shape) for op in m.ops if op.type in expected}
        assert {2, 3} <= ranks, ranks
    rep = _exact(converted, buf, X, tmp_path, "%s_%s" % (case, io), sorted(expected))
    assert len(np.unique(rep.reference_outputs)) > 4


def test_relu_multiplier_is_a_float_quotient(converted, tmp_path):
    """RELU's in_scale / out_scale is a float division in TFLite (ReluPrepare); with these scales the double
    quotient's multiplier rounds input -13 to 114 instead of TFLite's 113."""
    buf, X = converted.get("RELU")
    m, _ = _ops(converted.write(buf, "relu"))
    op = _op(m, "RELU")
    buf = requantized(buf, {op.inputs[0]: (0.0059465617, -50), op.outputs[0]: (0.01955758, 102)})
    _exact(converted, buf, X, tmp_path, "relu_float_quotient", ["RELU"])


# ---------------------------------------------------------------------------------------------------------------
# QUANTIZE: requantization between scales

def test_quantize_int8_to_int8_from_converter(converted, tmp_path):
    """LOGISTIC and TANH outputs (fixed scales 1/256, 1/128) requantized int8 -> int8 to MAXIMUM's scale."""
    buf, X = converted.get("requant")
    path = converted.write(buf, "requant")
    m, types = _ops(path)
    quants = [op for op in m.ops if op.type == "QUANTIZE"]
    assert len(quants) == 2 and all(
        m.tensors[q.inputs[0]].dtype == m.tensors[q.outputs[0]].dtype == "int8" and
        m.tensors[q.inputs[0]].scale[0] != m.tensors[q.outputs[0]].scale[0] for q in quants), types
    _exact(converted, buf, X, tmp_path, "requant", ["QUANTIZE", "LOGISTIC", "TANH", "MAXIMUM"])


# (QUANTIZE input type, its output scale and zero point): every input value through the model's first QUANTIZE
QUANTIZE_CASES = {
    "u8_to_i8_smaller_scale": ("uint8", 0.0123, -3),
    "u8_to_i8_larger_scale": ("uint8", 0.5, 100),
    "i8_to_i8_half_scale": ("int8", "half", 5),           # ratio 2: every odd value a rounding tie
    "i8_to_i8_double_scale": ("int8", "double", -70),     # ratio 0.5
    "i8_to_i8_odd_ratio": ("int8", 0.0777, 127),
}


@pytest.mark.parametrize("case", list(QUANTIZE_CASES))
def test_quantize_requantization_all_values(converted, case, tmp_path):
    """The uint8-I/O LEAKY_RELU model's input QUANTIZE (and its output QUANTIZE int8 -> uint8), retargeted to
    other scales and input types: every input value."""
    in_type, scale, zp = QUANTIZE_CASES[case]
    buf, _ = converted.get("LEAKY_RELU", "uint8")
    buf = with_input_type(buf, in_type)
    m, types = _ops(converted.write(buf, "quant_" + case))
    q = m.ops[0]
    assert q.type == "QUANTIZE" and types[-1] == "QUANTIZE", types
    s_in = float(m.tensors[q.inputs[0]].scale[0])
    s = {"half": s_in / 2, "double": s_in * 2}.get(scale, scale)
    buf = requantized(buf, {q.outputs[0]: (s, zp)})
    _exact(converted, buf, all_values(in_type, 2), tmp_path, "quant_" + case, ["QUANTIZE", "LEAKY_RELU"])


# ---------------------------------------------------------------------------------------------------------------
# Configurations TFLite rejects or that are not exact: clear errors, never a wrong result

def test_unsupported_configurations_fail_clearly(converted):
    cases = []
    buf, _ = converted.get("MAXIMUM_pairs")
    m, _ = _ops(converted.write(buf, "max_ok"))
    op = _op(m, "MAXIMUM")
    cases.append((requantized(buf, {op.inputs[1]: (0.5, 0)}), ["MAXIMUM", "quantization differ"]))
    buf, _ = converted.get("LOGISTIC")
    m, _ = _ops(converted.write(buf, "log_ok"))
    op = _op(m, "LOGISTIC")
    cases.append((requantized(buf, {op.outputs[0]: (1 / 128, -128)}), ["LOGISTIC", "1/256"]))
    buf, _ = converted.get("HARD_SWISH")
    m, _ = _ops(converted.write(buf, "hs_ok"))
    op = _op(m, "HARD_SWISH")
    cases.append((requantized(buf, {op.inputs[0]: (1.0, 0), op.outputs[0]: (0.001, 0)}), ["HARD_SWISH", "128"]))
    buf, _ = converted.get("MUL_pairs")
    m, _ = _ops(converted.write(buf, "mul_ok"))
    op = _op(m, "MUL")
    cases.append((requantized(buf, {op.inputs[0]: (8.0, 0), op.inputs[1]: (8.0, 0), op.outputs[0]: (0.0001, 0)}),
                  ["MUL", "overflows"]))
    buf, _ = converted.get("SUB_pairs")
    m, _ = _ops(converted.write(buf, "sub_ok"))
    op = _op(m, "SUB")
    cases.append((requantized(buf, {op.outputs[0]: (1e-9, 0)}), ["SUB", "larger scale"]))
    for k, (b, words) in enumerate(cases):
        with pytest.raises(ModelError) as e:
            reader.load(converted.write(b, "bad%d" % k))
        print(e.value)
        for w in words:
            assert w in str(e.value), (w, str(e.value))
