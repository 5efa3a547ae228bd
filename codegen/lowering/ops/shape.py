"""Ops that move int8 values without arithmetic: RESHAPE."""

from ..registry import register


@register("RESHAPE", family="shape")
def lower_reshape(ctx, op):
    """A new shape for the same bytes: no kernel, the planner aliases the storage."""
    o_t = ctx.m.tensors[op.outputs[0]]
    ctx.values[op.outputs[0]] = ctx.bb.emit(
        ctx.relax.op.reshape(ctx.values[op.inputs[0]], tuple(o_t.shape)))
    return 0

# pooling, elementwise ----------------------------------------------------
