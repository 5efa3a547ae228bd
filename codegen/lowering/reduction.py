"""Reductions over a window of taps (pool windows, mean axes, softmax rows) as TE expressions.

A reduction whose every axis has ONE element is not emitted as a reduction: its value is the single tap.  As a
TE reduction it becomes an init store (the reducer's identity, e.g. -2^31 for max) and an update that TVM emits in
the same C scope as the op's epilogue once the unit loops are gone; TVM's C printer then binds the update's load of
the accumulator to a temporary and hands the epilogue that same temporary, read BEFORE the update: a MAX_POOL_2D
with a 1x1 window wrote the clamp of -2^31 (-128) for every output.  Schedules that expect a reduction loop
(decompose_reduction at it) also fail on such blocks (SOFTMAX over a last axis of 1).
"""


def reduce_taps(reducer, body, extents, names):
    """`reducer(body(*axes), axis=axes)` over reduce axes of `extents`, or `body(0, ...)` when each extent is 1.

    reducer: te.max / te.sum / te.min; body(*tap indices) -> the int32 value of one tap."""
    from tvm import te, tirx

    if all(int(e) == 1 for e in extents):
        return body(*[tirx.const(0, "int32") for _ in extents])
    axes = [te.reduce_axis((0, int(e)), n) for e, n in zip(extents, names)]
    return reducer(body(*axes), axis=axes)


def is_single_tap(extents):
    return all(int(e) == 1 for e in extents)
