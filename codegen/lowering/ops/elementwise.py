"""Binary elementwise ops with numpy broadcasting: ADD."""

import numpy as np

from ..quant import activation_range, clamp_cast, i32, quantize_multiplier
from ..registry import (FUSED_ACTIVATION, all_of, broadcastable, clamp_activation, options, register, same_type_per_tensor)


ADD_OPTIONS = options("AddOptions", activation=FUSED_ACTIVATION)


@register("ADD", family="elementwise", options=ADD_OPTIONS,
          validate=all_of(same_type_per_tensor, clamp_activation, broadcastable))
def lower_add(ctx, op):
    """reference_integer_ops::Add (and its 4-D broadcast): both inputs minus their zero
    points, shifted left by 20, scaled by in_scale / (2 * max in_scale) with
    MultiplyByQuantizedMultiplierSmallerThanOneExp, summed, scaled by
    2 * max in_scale / (2^20 * out_scale), + out zero point, activation clamp."""
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    a_t, b_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]]
    o_t = m.tensors[op.outputs[0]]
    oshape = tuple(o_t.shape)
    nd = len(oshape)
    left_shift = 20
    sa, sb, so = (np.float32(a_t.scale[0]), np.float32(b_t.scale[0]),
                  np.float32(o_t.scale[0]))
    twice_max = float(np.float32(2) * max(sa, sb))
    ma, sha = quantize_multiplier(float(sa) / twice_max)
    mb, shb = quantize_multiplier(float(sb) / twice_max)
    mo, sho = quantize_multiplier(twice_max / float(np.float32(1 << left_shift) * so))
    if max(sha, shb, sho) > 0:
        m.fail("ADD (op #%d): scale ratio out of range for TFLite's quantized add."
               % op.index)
    azp, bzp, ozp = (int(a_t.zero_point[0]), int(b_t.zero_point[0]),
                     int(o_t.zero_point[0]))
    lo, hi = activation_range(op.options["activation"], so, ozp, o_t.dtype)
    odt = o_t.dtype

    def index(t, i):
        # numpy broadcasting: align on the right, size-1 dims read element 0
        sh = t.shape
        r = len(sh)
        return [i[nd - r + k] if sh[k] != 1 else 0 for k in range(r)]

    def f(a, b):
        def body(*i):
            va = (a(*index(a_t, i)).astype("int32") - i32(azp)) * i32(1 << left_shift)
            vb = (b(*index(b_t, i)).astype("int32") - i32(bzp)) * i32(1 << left_shift)
            s = rq(va, ma, sha) + rq(vb, mb, shb)
            return clamp_cast(rq(s, mo, sho) + i32(ozp), lo, hi, odt)
        return te.compute(oshape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(
        op, f, [ctx.operand(op.inputs[0]), ctx.operand(op.inputs[1])])
    return o_t.size

