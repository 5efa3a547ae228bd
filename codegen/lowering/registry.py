"""The op registry: one declaration per TFLite op, from which everything else derives.

An entry says how to read the op's builtin options from the flatbuffer, which option values it accepts (checked
before any other check or the lowering: a malformed option is one error naming the op and the option), which
checks make its C exact, which
MultiplyByQuantizedMultiplier rounding TFLite's reference kernel uses, and how to lower it to TE.  The model
reader (supported-op check, options), the lowering, the README's op list, `scons -h` and the tests' coverage
check all read this table, so adding an op is one `@register` in its family module under `ops/`.
"""

import numpy as np

REGISTRY = {}   # op name -> OpDef, in registration order (families in ops/__init__.py order)

ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT", 6: "SIGMOID"}
PADDINGS = {0: "SAME", 1: "VALID"}
# Fused activations whose quantized clamp is exact (CalculateActivationRangeQuantized).
CLAMP_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


class OpDef:
    def __init__(self, name, family, lower, options, validate, rounding, doc, accepts=None, index_outputs=False,
                 batch_one=False):
        self.name = name
        self.family = family
        self.lower = lower          # lower(ctx, op) -> MACs; emits TE computes through ctx
        self.options = options      # options(tflite.Operator) -> dict, or None
        self.accepts = accepts or {}  # option name -> Accepts: the values the op takes (check_options)
        self.validate = validate    # validate(model, op): raises ModelError via model.fail, or None
        self.rounding = rounding    # "double" | "single": MultiplyByQuantizedMultiplier form of TFLite's kernel
        self.doc = doc
        self.index_outputs = index_outputs  # its outputs are int32/int64 indices (ARG_MAX), not int8 activations
        self.batch_one = batch_one  # its kernels compute one image (NHWC, N = 1): check_batch refuses others

    def __repr__(self):
        return "OpDef(%s, %s)" % (self.name, self.family)


def register(name, *, family, options=None, accepts=None, validate=None, rounding="double", index_outputs=False,
             batch_one=False):
    """Decorator for a lowering function `fn(ctx, op) -> MACs`: registers TFLite op `name`.

    `index_outputs`: the op writes int32/int64 indices (ARG_MAX), which the reader lets through where it refuses
    every other non-8-bit activation (the ops reading them check their inputs themselves).

    `accepts`: {option: Accepts} for options read by `options` whose every value is not valid (strides, window
    sizes, enums): the reader refuses any other value before validate and the lowering run.

    `batch_one`: the op's kernels compute a single NHWC image; the reader refuses a batch above 1 (check_batch).
    Inside a model such a batch comes from SPACE_TO_BATCH_ND, which every other op takes whatever the batch."""
    def deco(fn):
        if name in REGISTRY:
            raise ValueError("op %s registered twice" % name)
        for key in accepts or {}:
            if options is None or key not in options.fields:
                raise ValueError("op %s declares accepted values of option %r, which its options do not read"
                                 % (name, key))
        doc = (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        REGISTRY[name] = OpDef(name, family, fn, options, validate, rounding, doc, accepts, index_outputs,
                               batch_one)
        return fn
    return deco


# ---------------------------------------------------------------------------------------------------------------
# 16x8 kernels (TFLite's int16 activations with int8 weights): an op with an int16 activation tensor is lowered by
# its entry here, never by its int8 lowering; an op without one is refused (kernel_for).

REGISTRY16 = {}  # op name -> OpDef of its 16x8 kernel, where TFLite's reference kernels have one


def register16(name, *, validate=None, rounding="double"):
    """Decorator for the 16x8 lowering `fn(ctx, op) -> MACs` of the registered op `name` (its options and accepted
    values are the int8 entry's: register it first)."""
    def deco(fn):
        if name in REGISTRY16:
            raise ValueError("16x8 kernel of %s registered twice" % name)
        d = REGISTRY[name]
        doc = (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        REGISTRY16[name] = OpDef(name, d.family, fn, d.options, validate, rounding, doc, d.accepts,
                                 batch_one=d.batch_one)
        return fn
    return deco


def has_int16(m, op):
    """Does `op` read or write an int16 activation (a non-constant tensor)?  (The int16 cell state of the int8
    LSTM, a variable input, is part of its int8 kernel: only its input and output count.)"""
    ins = op.inputs[:1] if op.type == "UNIDIRECTIONAL_SEQUENCE_LSTM" else op.inputs
    return any(i >= 0 and m.tensors[i].dtype == "int16" and not m.tensors[i].is_const
               for i in list(ins) + list(op.outputs))


def kernel_for(m, op):
    """The OpDef that checks and lowers `op`: its 16x8 kernel when it has int16 activations (None if TFLite's
    reference kernels have none here), else the int8 one (None for an unregistered op)."""
    if has_int16(m, op):
        registry()
        return REGISTRY16.get(op.type)
    return registry().get(op.type)


def registry16():
    """{op name: OpDef} of the 16x8 kernels, every family loaded."""
    registry()
    return REGISTRY16


def registry():
    """{op name: OpDef} with every family loaded."""
    from . import ops  # noqa: F401  (importing the family modules fills REGISTRY; they import tvm lazily)
    return REGISTRY


def supported_ops():
    return tuple(registry())


def lookup(name):
    return registry().get(name)


FAMILY_TITLES = {"quantize": "quantization", "conv": "convolution and fully connected", "pool": "pooling",
                 "elementwise": "elementwise (broadcasting)", "activation": "activations", "reduce": "reductions",
                 "shape": "shape and data movement", "recurrent": "recurrent"}


def markdown_op_list():
    """The supported ops by family, as the README shows them (a test keeps the README equal to this)."""
    families = {}
    for d in registry().values():
        families.setdefault(d.family, []).append(d.name)
    return "\n".join("- %s: %s" % (FAMILY_TITLES.get(f, f), ", ".join(names)) for f, names in families.items())



# ---------------------------------------------------------------------------------------------------------------
# Builtin options: declared per op as field -> flatbuffer getter (optionally with a value map or converter).

def options(table_class, **fields):
    """An options reader for `tflite.<table_class>`: each field is a getter name, or (getter, dict | callable).

    Returns {} when the op carries no options table (TFLite then uses the schema defaults; lowerings read
    optional fields with .get)."""
    def read(op):
        import tflite
        table = op.BuiltinOptions()
        if table is None:
            return {}
        o = getattr(tflite, table_class)()
        o.Init(table.Bytes, table.Pos)
        out = {}
        for key, spec in fields.items():
            getter, conv = spec if isinstance(spec, tuple) else (spec, None)
            v = getattr(o, getter)()
            if isinstance(conv, dict):
                v = conv.get(v, str(v))
            elif conv is not None:
                v = conv(v)
            out[key] = v
        return out
    read.table_class = table_class
    read.fields = fields
    return read


FUSED_ACTIVATION = ("FusedActivationFunction", ACTIVATIONS)
PADDING = ("Padding", PADDINGS)


# ---------------------------------------------------------------------------------------------------------------
# Accepted option values: declared per op (`accepts=`), checked by check_options before anything else

class Accepts:
    """The values an option may take: `test(value)`, described by `text`; `bad` are raw flatbuffer values outside
    them (the fuzzer writes each into a model and checks that it is refused); `label` names the option in
    messages (default "option <name>")."""

    def __init__(self, test, text, bad, label=None):
        self.test, self.text, self.bad, self.label = test, text, tuple(bad), label


def at_least(n):
    return Accepts(lambda v: isinstance(v, int) and v >= n, "an integer >= %d" % n, (n - 1, -1))


def one_of(values, bad, label=None):
    """An enum option read through a value map (unknown raw values read as their number, as a string)."""
    return Accepts(lambda v: v in values, "one of %s" % ", ".join(values), bad, label)


def positive_number():
    import math
    return Accepts(lambda v: isinstance(v, float) and v > 0 and math.isfinite(v), "a finite number > 0",
                   (0.0, -1.0))


PADDING_ACCEPTS = one_of(("SAME", "VALID"), bad=(2, 7))
# raw 4 is TANH, 5 SIGN_BIT: valid TFLite activations that no int8 kernel fuses; 9 is not an activation at all
CLAMP_ACCEPTS = one_of(CLAMP_ACTIVATIONS, bad=(4, 9), label="fused activation")


def check_options(m, op):
    """The op's declared options (`accepts=` of its @register) have accepted values; else one error naming the
    op, the option and what it accepts.  Runs before the op's other checks, so nothing is lowered from a
    malformed option (e.g. stride 0, which tf.lite itself crashes on)."""
    d = REGISTRY.get(op.type)
    for key, acc in (d.accepts if d is not None else {}).items():
        if key not in op.options:       # no options table: TFLite uses the schema defaults
            continue
        v = op.options[key]
        if not acc.test(v):
            what = "%s %s" % (acc.label, v) if acc.label else "option %s = %s" % (key, v)
            m.fail("%s: %s is not supported (option %s: %s). The file was not written by the TFLite converter "
                   "as is, or it is damaged; re-export the model." % (_what(op), what, key, acc.text))


def check_batch(m, op):
    """An op declared `batch_one` reads and writes one image: a 4-D activation with a leading dimension above 1
    (made inside the model by SPACE_TO_BATCH_ND) is one error naming the op, before its kernels would compute
    the first image only."""
    d = REGISTRY.get(op.type)
    if d is None or not d.batch_one:
        return
    for i in list(op.inputs) + list(op.outputs):
        t = m.tensors[i] if i >= 0 else None
        if t is not None and not t.is_const and len(t.shape) == 4 and t.shape[0] != 1:
            m.fail("%s: batch %d (tensor %r, shape %s); its generated kernels compute a batch of 1. A batch inside "
                   "a model comes from SPACE_TO_BATCH_ND, e.g. a dilated convolution the converter did not fold: "
                   "export the layer with its dilation rate, or build this model with BACKEND=tflm."
                   % (_what(op), t.shape[0], t.name, list(t.shape)))


def check_scales(m, op):
    """Every quantized tensor the op reads or writes (and its intermediates) has finite scales: an infinite or NaN
    scale (the converter writes one where calibration left a range empty, e.g. a layer after a RELU that was
    always 0) makes TFLite's QuantizeMultiplier undefined; one error naming the op and the tensor, before any
    requantization constant is computed from it."""
    for i in list(op.inputs) + list(op.outputs) + list(op.intermediates):
        t = m.tensors[i] if i >= 0 else None
        if t is None or not t.is_quantized:
            continue
        bad = np.asarray(t.scale, np.float64)[~np.isfinite(np.asarray(t.scale, np.float64))]
        if bad.size:
            m.fail("%s: tensor %r has quantization scale %s, not a finite number (TFLite's requantization of it is "
                   "undefined). The calibration data left a range empty (e.g. a layer after an activation that was "
                   "always 0): recalibrate with data that reaches it, or re-convert the model."
                   % (_what(op), t.name, float(bad[0])))


# ---------------------------------------------------------------------------------------------------------------
# Shared validators

def _what(op):
    return "%s (op #%d)" % (op.type, op.index)


def per_tensor(t):
    return t.is_quantized and len(t.scale) == 1


def same_type_per_tensor(m, op, inputs=None):
    """All activations of `op` int8/uint8 of one type with one scale and zero point each."""
    ins = [m.tensors[i] for i in (op.inputs if inputs is None else inputs) if i >= 0]
    o = m.tensors[op.outputs[0]]
    for t in ins + [o]:
        if t.dtype != o.dtype or t.dtype not in ("int8", "uint8") or not per_tensor(t):
            m.fail("%s: tensor %r is %s%s; only int8/uint8 tensors with one scale and zero point (all of the "
                   "same type) are supported." % (_what(op), t.name, t.dtype,
                                                  "" if per_tensor(t) else " without per-tensor quantization"))


def clamp_activation(m, op):
    act = op.options.get("activation", "NONE")
    if act not in CLAMP_ACTIVATIONS:
        m.fail("%s: fused activation %s is not supported (supported: %s)."
               % (_what(op), act, ", ".join(CLAMP_ACTIVATIONS)))


def same_quantization(m, op, a, b):
    """Ops that move int8 values without rescaling need input and output to share scale and zero point."""
    x, o = m.tensors[a], m.tensors[b]
    if float(x.scale[0]) != float(o.scale[0]) or int(x.zero_point[0]) != int(o.zero_point[0]):
        m.fail("%s: input and output quantization differ (scale %g/%g, zero point %d/%d); TFLite's int8 kernel "
               "needs them equal." % (_what(op), float(x.scale[0]), float(o.scale[0]), int(x.zero_point[0]),
                                      int(o.zero_point[0])))


def broadcastable(m, op):
    a, b = (m.tensors[i] for i in op.inputs[:2])
    o = m.tensors[op.outputs[0]]
    try:
        bshape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        bshape = None
    if len(op.inputs) != 2 or bshape != tuple(o.shape):
        m.fail("%s: input shapes %s and %s do not broadcast to the output shape %s."
               % (_what(op), a.shape, b.shape, o.shape))


def const_input(m, op, k, what):
    """Input `k` of `op` must be a constant tensor (e.g. an axis list or paddings); returns its data."""
    if len(op.inputs) <= k or op.inputs[k] < 0 or not m.tensors[op.inputs[k]].is_const:
        m.fail("%s: the %s must be a constant tensor; a computed %s makes the shape dynamic."
               % (_what(op), what, what))
    return np.asarray(m.tensors[op.inputs[k]].data)


def all_of(*checks):
    def validate(m, op):
        for c in checks:
            c(m, op)
    return validate
