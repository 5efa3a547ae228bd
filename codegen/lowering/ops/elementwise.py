"""Binary elementwise ops with numpy broadcasting: ADD, SUB, MUL, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE."""

import numpy as np

from ..quant import QRANGE, activation_range, clamp_cast, i32, mbqm_int, quantize_multiplier
from .. import microkernels as mk
from ..registry import (CLAMP_ACCEPTS, FUSED_ACTIVATION, broadcastable, clamp_activation, lookup, options, register,
                        same_quantization, same_type_per_tensor)


ADD_OPTIONS = options("AddOptions", activation=FUSED_ACTIVATION, pot_scale_int16=("PotScaleInt16", bool))
SUB_OPTIONS = options("SubOptions", activation=FUSED_ACTIVATION, pot_scale_int16=("PotScaleInt16", bool))
MUL_OPTIONS = options("MulOptions", activation=FUSED_ACTIVATION)


def broadcast_index(shape, i):
    """The index into an operand of `shape` that output index `i` reads under numpy broadcasting: dimensions
    align on the right, a size-1 dimension always reads element 0 (a scalar, shape (), reads its one value)."""
    off = len(i) - len(shape)
    return [i[off + k] if shape[k] != 1 else 0 for k in range(len(shape))]


def emit_binary(ctx, op, combine, tables=()):
    """One kernel over the broadcast output shape: out[i] = combine(a[ia], b[ib], *tables), with a and b the
    op's two inputs (activations or constants) read through broadcast_index in their own dtype, and `tables`
    constant arrays (Relax values from ctx.const) passed to the kernel as TE tensors."""
    from tvm import te
    oshape = tuple(ctx.m.tensors[op.outputs[0]].shape)

    def f(a, b, *tabs):
        # the shapes of the values as lowered (a scalar constant becomes a 1-element C array)
        sa, sb = (tuple(int(d) for d in t.shape) for t in (a, b))

        def body(*i):
            return combine(a(*broadcast_index(sa, i)), b(*broadcast_index(sb, i)), *tabs)
        return te.compute(oshape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0]), ctx.operand(op.inputs[1]),
                                                 *tables])
    ctx.elementwise_inplace(op, [(0, op.inputs[0]), (1, op.inputs[1])])


_ADD_LEFT_SHIFT = 20


def _add_sub_multipliers(m, op):
    """add.cc / sub.cc Prepare: in_scale / (2 * max in_scale) per input and 2 * max in_scale / (2^20 *
    out_scale), in double from the float scales, each a QuantizeMultiplierSmallerThanOneExp (shift <= 0)."""
    sa, sb, so = (np.float32(m.tensors[i].scale[0]) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    twice_max = float(np.float32(2) * max(sa, sb))
    return (quantize_multiplier(float(sa) / twice_max), quantize_multiplier(float(sb) / twice_max),
            quantize_multiplier(twice_max / float(np.float32(1 << _ADD_LEFT_SHIFT) * so)))


def _add_sub_checks(m, op):
    same_type_per_tensor(m, op)
    clamp_activation(m, op)
    broadcastable(m, op)
    if max(shift for _, shift in _add_sub_multipliers(m, op)) > 0:
        m.fail("%s (op #%d): the output scale %g is below 2 * max input scale / 2^20, out of range for TFLite's "
               "quantized %s; give the output a larger scale." % (op.type, op.index, float(
                   m.tensors[op.outputs[0]].scale[0]), op.type.lower()))


def _add_sub(ctx, op, subtract):
    """reference_integer_ops::Add / reference_ops::Add and reference_ops::Sub (SubElementwise,
    BroadcastQuantSubSlow) share their arithmetic: both inputs minus their zero points, shifted left by 20,
    each scaled by in_scale / (2 * max in_scale), added or subtracted, scaled by
    2 * max in_scale / (2^20 * out_scale), + out zero point, activation clamp.

    SUB subtracts the scaled input2.  Older TFLite ran SUB through ADD's kernel with input2's multiplier
    negated instead, which rounds exact SaturatingRoundingDoublingHighMul ties the other way; TF 2.21's
    BUILTIN_REF matches the subtraction (the q_ties case in tests/test_ops_pointwise.py)."""
    m = ctx.m
    rq = ctx.requant(op)
    a_t, b_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]]
    o_t = m.tensors[op.outputs[0]]
    (ma, sha), (mb, shb), (mo, sho) = _add_sub_multipliers(m, op)
    azp, bzp, ozp = (int(a_t.zero_point[0]), int(b_t.zero_point[0]),
                     int(o_t.zero_point[0]))
    lo, hi = activation_range(op.options.get("activation", "NONE"), o_t.scale[0], ozp, o_t.dtype)
    odt = o_t.dtype

    # Each input's scaled value depends on that input alone: a 256-entry int32 table per input, computed here
    # with the same integer arithmetic, leaves one requantization per element (the nested 64-bit expression of
    # three requantizations cost ~60 M4 instructions per element and seconds of TVM simplification).
    qmin = QRANGE[a_t.dtype][0]
    rounding = lookup(op.type).rounding

    def table(zp, mult, shift):
        return np.array([mbqm_int((v - zp) * (1 << _ADD_LEFT_SHIFT), mult, shift, rounding)
                         for v in range(qmin, qmin + 256)], np.int32)

    tab = (table(azp, ma, sha), table(bzp, mb, shb))
    same_shape = tuple(a_t.shape) == tuple(b_t.shape) == tuple(o_t.shape)
    if (mk.enabled() and odt == "int8" and a_t.dtype == "int8" and same_shape and rounding == "double"
            and not a_t.is_const and not b_t.is_const):
        # one microkernel loop: two table loads, one requantization per element
        bound = int(np.abs(tab[0]).max() + np.abs(tab[1]).max())
        rqt, lsh, flags = mk.requant_double([0], [mo], [sho], [bound], [False], (ozp, lo, hi))
        if flags & mk.RQ_SMMUL:
            # the tables hold twice each scaled value (2 * sum fits int32 by SMMUL's bound), so SRDHM is one
            # SMMLAR on the sum itself (TVMGEN_RQ_DOUBLED): one shift less per element
            tab = tuple(t * 2 for t in tab)
            rqt, flags = mk.doubled_sums(rqt, flags, True)
        tables = (ctx.const(tab[0], "add_a"), ctx.const(tab[1], "add_b"))
        args = [ctx.operand(op.inputs[0]), ctx.operand(op.inputs[1]), *tables, ctx.const(rqt, "add_rq"),
                ctx.const(lsh if flags & mk.RQ_LSHIFT else np.zeros(1, np.int8), "add_lshift")]
        ctx.values[op.outputs[0]] = mk.emit_call(
            ctx, op, "tvmgen_mk_add", args, tuple(o_t.shape), "int8", 0, "int8",
            [o_t.size, int(subtract), ozp, lo, hi, flags], scratch=False)
        # element i of both inputs is read before output element i is written: either dying input's bytes
        ctx.inplace[ctx.kname(op)] = [(0, 0), (1, 0)]
        return

    tables = (ctx.const(tab[0], "add_a"), ctx.const(tab[1], "add_b"))

    def combine(a, b, ta, tb):
        sa, sb = ta(a.astype("int32") - i32(qmin)), tb(b.astype("int32") - i32(qmin))
        s = sa - sb if subtract else sa + sb
        return clamp_cast(rq(s, mo, sho) + i32(ozp), lo, hi, odt)

    emit_binary(ctx, op, combine, tables)


@register("ADD", family="elementwise", options=ADD_OPTIONS, accepts={"activation": CLAMP_ACCEPTS},
          validate=_add_sub_checks)
def lower_add(ctx, op):
    """reference_integer_ops::Add (and its broadcast): both inputs minus their zero
    points, shifted left by 20, scaled by in_scale / (2 * max in_scale) with
    MultiplyByQuantizedMultiplierSmallerThanOneExp, summed, scaled by
    2 * max in_scale / (2^20 * out_scale), + out zero point, activation clamp."""
    _add_sub(ctx, op, subtract=False)
    return ctx.m.tensors[op.outputs[0]].size


@register("SUB", family="elementwise", options=SUB_OPTIONS, accepts={"activation": CLAMP_ACCEPTS},
          validate=_add_sub_checks)
def lower_sub(ctx, op):
    """a - b with ADD's rescaling, the scaled input2 subtracted (reference_ops::Sub / BroadcastQuantSubSlow)."""
    _add_sub(ctx, op, subtract=True)
    return ctx.m.tensors[op.outputs[0]].size


# The product of two zero-point-corrected 8-bit values is at most 255^2 < 2^16, so MultiplyByQuantizedMultiplier's
# left shift x * 2^shift stays within int32 up to this shift (TFLite itself would overflow beyond it).
_MUL_MAX_LEFT_SHIFT = 15


def _mul_multiplier(m, op):
    """mul.cc Prepare: in1_scale * in2_scale / out_scale, a float expression, then QuantizeMultiplier."""
    a_t, b_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    real = np.float32(a_t.scale[0]) * np.float32(b_t.scale[0]) / np.float32(o_t.scale[0])
    return quantize_multiplier(float(real))


def _mul_checks(m, op):
    same_type_per_tensor(m, op)
    clamp_activation(m, op)
    broadcastable(m, op)
    if _mul_multiplier(m, op)[1] > _MUL_MAX_LEFT_SHIFT:
        m.fail("MUL (op #%d): in1_scale * in2_scale / out_scale is >= 2^%d, so the rescaled product overflows "
               "int32 (in TFLite as well); give the output a larger scale."
               % (op.index, _MUL_MAX_LEFT_SHIFT))


@register("MUL", family="elementwise", options=MUL_OPTIONS, accepts={"activation": CLAMP_ACCEPTS},
          validate=_mul_checks)
def lower_mul(ctx, op):
    """reference_integer_ops::Mul / BroadcastMul6DSlow (reference_ops for uint8): (a - a_zp) * (b - b_zp) in
    int32, MultiplyByQuantizedMultiplier by in1_scale * in2_scale / out_scale, + out zero point, activation
    clamp."""
    m = ctx.m
    rq = ctx.requant(op)
    a_t, b_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    mult, shift = _mul_multiplier(m, op)
    azp, bzp, ozp = int(a_t.zero_point[0]), int(b_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = activation_range(op.options.get("activation", "NONE"), o_t.scale[0], ozp, o_t.dtype)
    odt = o_t.dtype

    def combine(a, b):
        prod = (a.astype("int32") - i32(azp)) * (b.astype("int32") - i32(bzp))
        return clamp_cast(rq(prod, mult, shift) + i32(ozp), lo, hi, odt)

    emit_binary(ctx, op, combine)
    return o_t.size


def _max_min_checks(m, op):
    """reference_ops::MaximumMinimumBroadcastSlow compares the raw 8-bit values, which is max/min of the real
    values only if both inputs share the output's quantization (the converter makes them equal)."""
    same_type_per_tensor(m, op)
    broadcastable(m, op)
    same_quantization(m, op, op.inputs[0], op.outputs[0])
    same_quantization(m, op, op.inputs[1], op.outputs[0])


@register("MAXIMUM", family="elementwise", validate=_max_min_checks)
def lower_maximum(ctx, op):
    """max(a, b) of the raw values, broadcast (maximum_minimum.h)."""
    from tvm import tirx
    emit_binary(ctx, op, tirx.max)
    return 0


@register("MINIMUM", family="elementwise", validate=_max_min_checks)
def lower_minimum(ctx, op):
    """min(a, b) of the raw values, broadcast (maximum_minimum.h)."""
    from tvm import tirx
    emit_binary(ctx, op, tirx.min)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# SQUARED_DIFFERENCE

_SQDIFF_LEFT_SHIFT = 7


def _sqdiff_multipliers(m, op):
    """squared_difference.cc Prepare: in_scale / (2 * max in_scale) per input and (2 * max in_scale)^2 /
    (2^14 * out_scale), in double from the float scales (2 * max and 2^14 * out_scale are float products), each a
    QuantizeMultiplierSmallerThanOneExp (TFLite aborts on a real multiplier >= 1)."""
    sa, sb, so = (np.float32(m.tensors[i].scale[0]) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    twice_max = float(np.float32(2) * max(sa, sb))
    reals = (float(sa) / twice_max, float(sb) / twice_max,
             twice_max * twice_max / float(np.float32(1 << (2 * _SQDIFF_LEFT_SHIFT)) * so))
    return reals, [quantize_multiplier(r) for r in reals]


def _sqdiff_checks(m, op):
    same_type_per_tensor(m, op)
    broadcastable(m, op)
    o = m.tensors[op.outputs[0]]
    if o.dtype != "int8":
        m.fail("%s (op #%d): tensor %r is %s; TFLite's quantized SQUARED_DIFFERENCE is int8 only."
               % (op.type, op.index, o.name, o.dtype))
    if len(o.shape) > 4 and any(tuple(m.tensors[i].shape) != tuple(o.shape) for i in op.inputs[:2]):
        m.fail("%s (op #%d): a broadcast of %d-D tensors; TFLite broadcasts SQUARED_DIFFERENCE in at most 4-D."
               % (op.type, op.index, len(o.shape)))
    reals, _ = _sqdiff_multipliers(m, op)
    if reals[2] >= 1.0:
        m.fail("%s (op #%d): the output scale %g is below (2 * max input scale)^2 / 2^14, out of range for "
               "TFLite's quantized kernel (it stops there); give the output a larger scale."
               % (op.type, op.index, float(o.scale[0])))


@register("SQUARED_DIFFERENCE", family="elementwise", validate=_sqdiff_checks)
def lower_squared_difference(ctx, op):
    """squared_difference.cc int8 (and its 4-D broadcast): each input minus its zero point, shifted left by 7,
    scaled by in_scale / (2 * max in_scale) (a 256-entry int32 table per input, MultiplyByQuantizedMultiplier-
    SmallerThanOneExp), the difference squared in int32 (< 255^2 * 2^14), scaled by (2 * max in_scale)^2 /
    (2^14 * out_scale), + out zero point, clamped to int8."""
    m = ctx.m
    rq = ctx.requant(op)
    a_t, b_t, o_t = (m.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _, ((ma, sha), (mb, shb), (mo, sho)) = _sqdiff_multipliers(m, op)
    ozp = int(o_t.zero_point[0])
    qmin = QRANGE[a_t.dtype][0]
    rounding = lookup(op.type).rounding

    def table(t, mult, shift, hint):
        zp = int(t.zero_point[0])
        return ctx.const(np.array([mbqm_int((v - zp) * (1 << _SQDIFF_LEFT_SHIFT), mult, shift, rounding)
                                   for v in range(qmin, qmin + 256)], np.int32), hint)

    def combine(a, b, ta, tb):
        d = ta(a.astype("int32") - i32(qmin)) - tb(b.astype("int32") - i32(qmin))
        return clamp_cast(rq(d * d, mo, sho) + i32(ozp), -128, 127, "int8")

    emit_binary(ctx, op, combine, (table(a_t, ma, sha, "sqd_a"), table(b_t, mb, shb, "sqd_b")))
    return o_t.size
