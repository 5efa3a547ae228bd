"""MAX_POOL_2D, AVERAGE_POOL_2D."""

import numpy as np

from .. import memplan
from ..quant import QRANGE, activation_range, clamp_cast, i32, same_padding
from ..registry import (CLAMP_ACCEPTS, FUSED_ACTIVATION, PADDING, PADDING_ACCEPTS, at_least, clamp_activation,
    options, register, same_quantization, same_type_per_tensor)
from ..reduction import reduce_taps
from ..schedules import sched_reduction
from .. import microkernels as mk


def _pool_window(x, geometry, reduce_fn, fill):
    """acc[n, oh, ow, c]: `reduce_fn` (te.max / te.sum) over the pool window of x in int32; a tap that falls in
    the padding reads `fill`, chosen so that it cannot change the result."""
    from tvm import te, tirx

    H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = geometry

    def body(n, oh, ow, c):
        def tap(rh, rw):
            ih, iw = oh * sh + rh - pt, ow * sw + rw - pl
            xv = x[n, ih, iw, c].astype("int32")
            conds = ([ih >= 0, ih < H] if edge_h else []) + ([iw >= 0, iw < W] if edge_w else [])
            if conds:
                xv = tirx.if_then_else(tirx.all(*conds), xv, i32(fill))
            return xv
        return reduce_taps(reduce_fn, tap, (KH, KW), ("rh", "rw"))     # a 1x1 window: the tap itself

    return te.compute((1, OH, OW, C), body, name="acc")



POOL_OPTIONS = options("Pool2DOptions", padding=PADDING, stride_h="StrideH", stride_w="StrideW",
                       filter_h="FilterHeight", filter_w="FilterWidth", activation=FUSED_ACTIVATION)


POOL_ACCEPTS = {"stride_h": at_least(1), "stride_w": at_least(1), "filter_h": at_least(1), "filter_w": at_least(1),
                "padding": PADDING_ACCEPTS, "activation": CLAMP_ACCEPTS}


def _pool_checks(m, op):
    same_type_per_tensor(m, op)
    clamp_activation(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if (len(x.shape) != 4 or len(o.shape) != 4 or o.shape[3] != x.shape[3]
            or op.options.get("padding") not in ("SAME", "VALID")):
        m.fail("%s (op #%d): only 4-D NHWC pooling with SAME or VALID padding is supported." % (op.type, op.index))
    same_quantization(m, op, op.inputs[0], op.outputs[0])


def _pool_geometry(ctx, op):
    m = ctx.m
    opt = op.options
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    _, H, W, C = x_t.shape
    _, OH, OW, OC = o_t.shape
    KH, KW = int(opt["filter_h"]), int(opt["filter_w"])
    sh, sw = int(opt["stride_h"]), int(opt["stride_w"])
    pt = same_padding(H, KH, sh, 1, OH) if opt["padding"] == "SAME" else 0
    pl = same_padding(W, KW, sw, 1, OW) if opt["padding"] == "SAME" else 0
    # do the taps ever leave the input?  (then each tap gets a bounds check)
    edge_h = bool(pt or sh * (OH - 1) + KH - 1 - pt >= H)
    edge_w = bool(pl or sw * (OW - 1) + KW - 1 - pl >= W)
    return x_t, o_t, (H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w)



def _inplace(ctx, op, x_t, o_t, g):
    """sched_reduction keeps the loop nest over (n, oh, ow, c) in row-major order and writes each element after
    its window is read into the scalar accumulator: the output may overlap its dying input
    (memplan.inplace_delta_pool). The microkernels (tvmgen_mk_maxpool / _avgpool) run the same pixel-major order
    and write four channels after reading all their taps: every write comes no earlier than in the element order,
    so the same delta holds."""
    H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = g
    ctx.inplace[ctx.kname(op)] = [(0, memplan.inplace_delta_pool(
        H, W, C, OH, OW, sh, sw, pt, pl, np.dtype(x_t.dtype).itemsize, np.dtype(o_t.dtype).itemsize))]


@register("MAX_POOL_2D", family="pool", options=POOL_OPTIONS, accepts=POOL_ACCEPTS,
          validate=_pool_checks, batch_one=True)
def lower_max_pool_2d(ctx, op):
    """reference_integer_ops::MaxPool: max over the in-bounds taps of the window, then the
    fused activation clamp (input and output share scale and zero point)."""
    from tvm import te
    x_t, o_t, g = _pool_geometry(ctx, op)
    H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = g
    lo, hi = activation_range(op.options["activation"], o_t.scale[0],
                              int(o_t.zero_point[0]), o_t.dtype)
    qmin = QRANGE[x_t.dtype][0]
    odt = o_t.dtype
    if mk.enabled() and x_t.dtype == "int8" and odt == "int8":
        # one microkernel loop: four channels per SSUB8 + SEL (microkernels.h, tvmgen_mk_maxpool)
        ctx.values[op.outputs[0]] = mk.emit_call(
            ctx, op, "tvmgen_mk_maxpool", [ctx.values[op.inputs[0]]], (1, OH, OW, C), "int8", 0, "int8",
            [H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, lo, hi], scratch=False)
        _inplace(ctx, op, x_t, o_t, g)      # pixel-major too; four channels written after their taps
        return OH * OW * C * KH * KW

    def f(x):
        # an out-of-bounds tap reads the lowest value: it never wins
        acc = _pool_window(x, g, te.max, qmin)
        return te.compute((1, OH, OW, C), lambda *i: clamp_cast(acc(*i), lo, hi, odt),
                          name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]],
                                           lambda s: sched_reduction(s, 4))
    _inplace(ctx, op, x_t, o_t, g)
    return OH * OW * C * KH * KW



@register("AVERAGE_POOL_2D", family="pool", options=POOL_OPTIONS, accepts=POOL_ACCEPTS,
          validate=_pool_checks, batch_one=True)
def lower_average_pool_2d(ctx, op):
    """reference_integer_ops::AveragePool: int32 sum over the in-bounds taps only, divided
    by their count with rounding half away from zero ((acc +- count / 2) / count, C
    truncating division), then the fused activation clamp."""
    from tvm import te, tirx
    x_t, o_t, g = _pool_geometry(ctx, op)
    H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = g
    lo, hi = activation_range(op.options["activation"], o_t.scale[0],
                              int(o_t.zero_point[0]), o_t.dtype)
    odt = o_t.dtype
    if mk.enabled() and x_t.dtype == "int8" and odt == "int8" and KH * KW <= mk.MAX_AVGPOOL_TAPS:
        # one microkernel loop: four channels summed per SXTAB16 pair (microkernels.h, tvmgen_mk_avgpool)
        ctx.values[op.outputs[0]] = mk.emit_call(
            ctx, op, "tvmgen_mk_avgpool", [ctx.values[op.inputs[0]]], (1, OH, OW, C), "int8", 0, "int8",
            [H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, lo, hi], scratch=False)
        _inplace(ctx, op, x_t, o_t, g)      # pixel-major too; four channels written after their taps
        return OH * OW * C * KH * KW

    def extents(n_out, stride, pad, K, size):
        # in-bounds taps along one axis for each output position
        return [min(K, size - (o * stride - pad)) - max(0, pad - o * stride)
                for o in range(n_out)]

    def extent(o, stride, pad, K, size):
        origin = o * stride - pad
        return tirx.min(K, size - origin) - tirx.max(0, 0 - origin)

    eh, ew = extents(OH, sh, pt, KH, H), extents(OW, sw, pl, KW, W)

    def rounded_div(a, cnt):
        # (a > 0 ? a + cnt / 2 : a - cnt / 2) / cnt, C truncating division by a constant
        # (the count takes only a few values: one division per value, picked by Select,
        # keeps everything in 32 bits and lets the C compiler use a multiply)
        half = cnt // 2
        return tirx.truncdiv(a + tirx.Select(a > i32(0), i32(half), i32(-half)),
                             i32(cnt))

    def by_count(a, oh, ow):
        hv, wv = sorted(set(eh)), sorted(set(ew))
        ehx = extent(oh, sh, pt, KH, H) if len(hv) > 1 else None
        ewx = extent(ow, sw, pl, KW, W) if len(wv) > 1 else None

        def over_w(h):
            v = rounded_div(a, h * wv[-1])
            for w in reversed(wv[:-1]):
                v = tirx.Select(ewx == w, rounded_div(a, h * w), v)
            return v
        v = over_w(hv[-1])
        for h in reversed(hv[:-1]):
            v = tirx.Select(ehx == h, over_w(h), v)
        return v

    def f(x):
        acc = _pool_window(x, g, te.sum, 0)      # padding taps add nothing; by_count divides by real taps

        def epi(n, oh, ow, c):
            return clamp_cast(by_count(acc[n, oh, ow, c], oh, ow), lo, hi, odt)

        return te.compute((1, OH, OW, C), epi, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]],
                                           lambda s: sched_reduction(s, 4))
    _inplace(ctx, op, x_t, o_t, g)
    return OH * OW * C * KH * KW

