"""The op registry: one declaration per TFLite op, from which everything else derives.

An entry says how to read the op's builtin options from the flatbuffer, which checks make its C exact, which
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
    def __init__(self, name, family, lower, options, validate, rounding, doc):
        self.name = name
        self.family = family
        self.lower = lower          # lower(ctx, op) -> MACs; emits TE computes through ctx
        self.options = options      # options(tflite.Operator) -> dict, or None
        self.validate = validate    # validate(model, op): raises ModelError via model.fail, or None
        self.rounding = rounding    # "double" | "single": MultiplyByQuantizedMultiplier form of TFLite's kernel
        self.doc = doc

    def __repr__(self):
        return "OpDef(%s, %s)" % (self.name, self.family)


def register(name, *, family, options=None, validate=None, rounding="double"):
    """Decorator for a lowering function `fn(ctx, op) -> MACs`: registers TFLite op `name`."""
    def deco(fn):
        if name in REGISTRY:
            raise ValueError("op %s registered twice" % name)
        doc = (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        REGISTRY[name] = OpDef(name, family, fn, options, validate, rounding, doc)
        return fn
    return deco


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
                 "shape": "shape and data movement"}


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
    return read


FUSED_ACTIVATION = ("FusedActivationFunction", ACTIVATIONS)
PADDING = ("Padding", PADDINGS)


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
