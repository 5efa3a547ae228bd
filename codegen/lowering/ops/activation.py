"""Activations: RELU, RELU6."""

import numpy as np

from ..quant import activation_range, clamp_cast, i32, quantize_multiplier
from ..registry import register, same_type_per_tensor


def _relu_x(ctx, op, act):
    """Standalone RELU / RELU6 (TFLite QuantizedReluX + reference ReluX): out_zp +
    MultiplyByQuantizedMultiplier(x - in_zp, in_scale / out_scale), clamped to
    [max(qmin, out_zp), qmax] (RELU) or [.., min(qmax, out_zp + round(6 / out_scale))]."""
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    mult, shift = quantize_multiplier(float(np.float32(x_t.scale[0]))
                                      / float(np.float32(o_t.scale[0])))
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = activation_range(act, o_t.scale[0], ozp, o_t.dtype)
    odt = o_t.dtype

    def f(x):
        return te.compute(x.shape, lambda *i: clamp_cast(
            rq(x(*i).astype("int32") - i32(izp), mult, shift) + i32(ozp), lo, hi, odt),
            name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]])
    return 0


@register("RELU", family="activation", validate=same_type_per_tensor)
def lower_relu(ctx, op):
    """max(x, 0) with requantization to the output scale."""
    return _relu_x(ctx, op, "RELU")


@register("RELU6", family="activation", validate=same_type_per_tensor)
def lower_relu6(ctx, op):
    """min(max(x, 0), 6) with requantization to the output scale."""
    return _relu_x(ctx, op, "RELU6")
