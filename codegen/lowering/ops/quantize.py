"""QUANTIZE (requantize between int8/uint8 scales) and a final DEQUANTIZE to float32."""

import numpy as np

from ..quant import QRANGE, clamp_cast, i32, left_shift_overflows, mbqm, mbqm_int, quantize_multiplier
from ..registry import lookup, register


@register("QUANTIZE", family="quantize")
def lower_quantize(ctx, op):
    """Requantize int8/uint8 -> int8/uint8 (e.g. the uint8 model input to int8, or between two scales)."""
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    ti, to = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if ti.dtype == "float32":
        return _lower_float_quantize(ctx, op, ti, to)
    if ti.dtype not in QRANGE:
        m.fail("QUANTIZE (op #%d) from %s is not supported." % (op.index, ti.dtype))
    eff = float(np.float32(ti.scale[0])) / float(np.float32(to.scale[0]))
    mult, shift = quantize_multiplier(eff)
    izp, ozp = int(ti.zero_point[0]), int(to.zero_point[0])
    lo, hi = QRANGE[to.dtype]
    odt = to.dtype

    # equal scales (e.g. uint8 -> int8 input): MultiplyByQuantizedMultiplier(v, 2^30, 1)
    # = SRDHM(2v, 2^30) = v exactly, so only the zero points move
    identity = rq is mbqm and (mult, shift) == (1 << 30, 1)
    if left_shift_overflows(QRANGE[ti.dtype], izp, shift):
        # TFLite's int32 (x - zp) * 2^shift wraps around; in C it would be undefined: the op is its table
        rounding = lookup(op.type).rounding
        ctx.lookup_table(op, lambda v: min(max(mbqm_int(v - izp, mult, shift, rounding) + ozp, lo), hi))
        return 0

    def value(v):
        if identity:
            return v + i32(ozp - izp)
        return rq(v - i32(izp), mult, shift) + i32(ozp)

    def f(x):
        return te.compute(
            x.shape, lambda *i: clamp_cast(value(x(*i).astype("int32")), lo, hi, odt),
            name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]])
    ctx.elementwise_inplace(op, [(0, op.inputs[0])])
    return 0



INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1


def _lower_float_quantize(ctx, op, ti, to):
    """A float32 model input quantized by the model itself (inference_input_type=tf.float32, only at the model
    input, see codegen.frontend.reader), as TFLite's reference AffineQuantize computes it:
    int32(round(val / float(scale))) + zero_point, clamped to the output type; the division in float32, round()
    half away from zero (C roundf).  Where the C++ cast is undefined (|val / scale| >= 2^31, NaN: inf and huge
    values) tf.lite on x86 gets INT32_MIN, and adding the zero point wraps around in int32; the C here computes
    exactly that with defined arithmetic (int64, then wrapped), so the check agrees with tf.lite for every float.
    The scale is a one-element constant array, an exact hexadecimal literal (as DEQUANTIZE's)."""
    from tvm import te, tirx
    info = np.iinfo(to.dtype)
    lo, hi, zp = int(info.min), int(info.max), int(to.zero_point[0])
    # [scale, -2^31, 2^31] as exact float literals (TVM prints a float immediate with 7 digits: another float)
    consts = ctx.const(np.array([to.scale[0], -2.0 ** 31, 2.0 ** 31], np.float32), "quantize")
    wrapped = INT32_MIN + zp                     # the out-of-range result, wrapped into int32 as tf.lite's is
    wrapped += 2 ** 32 if wrapped < INT32_MIN else 0
    bad = min(max(wrapped, lo), hi)

    def i64(v):
        return tirx.const(v, "int64")

    def value(x, c):
        r = tirx.call_pure_extern("float32", "roundf", x / c[0])     # C roundf: half away from zero
        v = r.astype("int64") + i64(zp)
        inside = tirx.if_then_else(v > i64(INT32_MAX), i64(lo),      # int32 overflow wraps to a negative value
                                   tirx.if_then_else(v < i64(INT32_MIN), i64(hi),
                                                     tirx.max(tirx.min(v, i64(hi)), i64(lo))))
        ok = tirx.all(r >= c[1], r < c[2])                           # false for NaN too
        return tirx.if_then_else(ok, inside, i64(bad)).astype(to.dtype)

    def f(x, c):
        return te.compute(x.shape, lambda *i: value(x(*i), c), name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]], consts])
    return 0


@register("DEQUANTIZE", family="quantize")
def lower_dequantize(ctx, op):
    """DEQUANTIZE to float32 (only as the model's last op, see codegen.frontend.reader): reference
    Dequantize computes float(double(scale) * (x - zp)); that double product is exact
    (24-bit scale times a 9-bit integer), so one float32 multiply rounds identically.
    The scale is a one-element constant array, written as an exact hexadecimal literal: TVM's C
    printer writes a float immediate with 7 significant digits, often another float32 (the
    fuzzer found outputs off by one ulp)."""
    from tvm import te
    m = ctx.m
    x_t = m.tensors[op.inputs[0]]
    scale = ctx.const(np.array([x_t.scale[0]], np.float32), "scale")
    zp = int(x_t.zero_point[0])

    def f(x, s):
        return te.compute(x.shape, lambda *i: (x(*i).astype("int32") - i32(zp)).astype(
            "float32") * s[0], name="out")

    # the input may be a constant: an SSD's anchors, folded at codegen time (frontend/fold.py)
    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0], "dequantize"), scale])
    return 0

