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

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]], scale])
    return 0

