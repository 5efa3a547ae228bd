"""Ops that move int8/uint8 values without arithmetic (except uint8 CONCATENATION's rescale): RESHAPE, SQUEEZE,
PAD, PADV2, CONCATENATION, STRIDED_SLICE, RESIZE_NEAREST_NEIGHBOR, TRANSPOSE.

Every index computation that TFLite does per call at run time (slice bounds, nearest-neighbour source rows, pad
borders) is done here once, in Python, the way TFLite's reference kernel does it; the kernels only gather bytes.
"""

import math

import numpy as np

from .. import memplan
from .. import microkernels as mk
from ..quant import i32, round_half_away
from ..registry import (ACTIVATIONS, _what, const_input, one_of, options, per_tensor, register,
    same_type_per_tensor)


def _data_checks(m, op, data_inputs=(0,)):
    """The activations of a data-movement op: int8/uint8, one type, per-tensor quantized."""
    same_type_per_tensor(m, op, [op.inputs[k] for k in data_inputs])


def _alias(ctx, op):
    """A new shape for the same bytes: a Relax reshape, no kernel (the planner aliases the storage)."""
    o_t = ctx.m.tensors[op.outputs[0]]
    ctx.values[op.outputs[0]] = ctx.reshape(ctx.operand(op.inputs[0]), o_t.shape)
    return 0


def _dtype_const(value, dtype):
    from tvm import tirx
    return tirx.const(int(value), dtype)


# ---------------------------------------------------------------------------------------------------------------
# RESHAPE, SQUEEZE


@register("RESHAPE", family="shape")
def lower_reshape(ctx, op):
    """A new shape for the same bytes: no kernel, the planner aliases the storage."""
    return _alias(ctx, op)


def _squeeze_dims(v):
    # SqueezeDimsAsNumpy gives 0 (not an array) when the list is absent
    return [] if isinstance(v, int) else [int(d) for d in np.ravel(v)]


def _squeeze_checks(m, op):
    _data_checks(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    rank = len(x.shape)
    dims = op.options.get("squeeze_dims", [])
    if any(not -rank <= d < rank for d in dims):
        m.fail("%s: squeeze dimensions %s are out of range for a %d-D input." % (_what(op), dims, rank))
    dims = {d % rank for d in dims}
    # squeeze.cc Prepare: the listed dimensions (all size-1 ones if none are listed) must be 1 and are dropped
    drop = dims or {d for d, s in enumerate(x.shape) if s == 1}
    want = [s for d, s in enumerate(x.shape) if d not in drop]
    if any(x.shape[d] != 1 for d in drop) or want != list(o.shape):
        m.fail("%s: squeezing dimensions %s of %s does not give the output shape %s."
               % (_what(op), sorted(drop), list(x.shape), list(o.shape)))


@register("SQUEEZE", family="shape", options=options("SqueezeOptions", squeeze_dims=("SqueezeDimsAsNumpy",
                                                                                     _squeeze_dims)),
          validate=_squeeze_checks)
def lower_squeeze(ctx, op):
    """Drops size-1 dimensions: like RESHAPE, no kernel (the output tensor's shape says which)."""
    return _alias(ctx, op)


# ---------------------------------------------------------------------------------------------------------------
# PAD, PADV2


def _paddings(m, op):
    """The (before, after) padding per dimension, from the constant paddings tensor (TFLite's pad.cc)."""
    x = m.tensors[op.inputs[0]]
    p = const_input(m, op, 1, "paddings")
    rank = len(x.shape)
    if p.shape != (rank, 2) or p.dtype.kind not in "iu":
        m.fail("%s: the paddings tensor has shape %s and type %s; TFLite needs an integer [%d, 2] tensor."
               % (_what(op), list(p.shape), p.dtype, rank))
    p = [(int(a), int(b)) for a, b in p.tolist()]
    if any(a < 0 or b < 0 for a, b in p):
        m.fail("%s: negative paddings %s are not allowed by TFLite." % (_what(op), p))
    return p


def _pad_checks(m, op):
    _data_checks(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if len(x.shape) > 5:
        m.fail("%s: %d-D input; TFLite pads at most 5-D tensors." % (_what(op), len(x.shape)))
    p = _paddings(m, op)
    want = tuple(d + a + b for d, (a, b) in zip(x.shape, p))
    if want != tuple(o.shape):
        m.fail("%s: input %s padded by %s is %s, but the output tensor is %s."
               % (_what(op), list(x.shape), p, list(want), list(o.shape)))
    if op.type == "PADV2":
        c = const_input(m, op, 2, "padding value")
        ct = m.tensors[op.inputs[2]]
        if c.size != 1 or ct.dtype != o.dtype:
            m.fail("%s: the padding value must be one %s constant (got %s %s)."
                   % (_what(op), o.dtype, ct.dtype, list(c.shape)))
        # pad.cc EvalInt: the constant must be quantized like the output
        if (not per_tensor(ct) or float(ct.scale[0]) != float(o.scale[0])
                or int(ct.zero_point[0]) != int(o.zero_point[0])):
            m.fail("%s: the padding value is quantized differently from the output; TFLite's quantized PADV2 "
                   "needs the same scale and zero point." % _what(op))


def _lower_pad(ctx, op, pad_value):
    """reference_ops::Pad: every output element outside the input's box is `pad_value` (raw integer), the rest is
    the input element, shifted by the leading paddings."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    pads = _paddings(m, op)
    oshape = tuple(o_t.shape)
    odt = o_t.dtype
    if (mk.enabled() and odt in ("int8", "uint8") and x_t.dtype == odt and len(oshape) == 4
            and pads[0] == (0, 0) and oshape[0] == 1):
        # runs of bytes copied and filled four at a time (microkernels.h tvmgen_mk_pad)
        _, H, W, C = x_t.shape
        _, OH, OW, OC = oshape
        ctx.values[op.outputs[0]] = mk.emit_call(
            ctx, op, "tvmgen_mk_pad", [ctx.operand(op.inputs[0])], oshape, odt, 0, odt,
            [H, W, C, OH, OW, OC, pads[1][0], pads[2][0], pads[3][0], int(pad_value)], scratch=False)
        _pad_inplace(ctx, op, x_t, oshape, pads, odt)   # row-major too; a copied word is written after it is read
        return 0
    fill = _dtype_const(pad_value, odt)

    def f(x):
        def body(*i):
            src = [i[d] - pads[d][0] for d in range(len(oshape))]
            inside = []
            for d, (a, b) in enumerate(pads):
                if a:
                    inside.append(i[d] >= a)
                if b:
                    inside.append(i[d] < a + x_t.shape[d])
            if not inside:
                return x(*src)
            return tirx.if_then_else(tirx.all(*inside), x(*src), fill)
        return te.compute(oshape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    _pad_inplace(ctx, op, x_t, oshape, pads, odt)
    return 0


def _pad_inplace(ctx, op, x_t, oshape, pads, odt):
    """The loop nest runs over the output in row-major order, one input element read per output element before it
    is written: the output may overlap its dying input (memplan.inplace_delta_gather). tvmgen_mk_pad keeps that
    order and stores a copied word only after loading it (fill words read nothing), so no write comes earlier."""
    src = np.full(oshape, -1, np.int64)
    src[tuple(slice(a, a + d) for (a, _), d in zip(pads, x_t.shape))] = np.arange(x_t.size).reshape(x_t.shape)
    esize = np.dtype(odt).itemsize
    ctx.inplace[ctx.kname(op)] = [(0, memplan.inplace_delta_gather(src, esize, esize))]


@register("PAD", family="shape", validate=_pad_checks)
def lower_pad(ctx, op):
    """Constant padding with the output zero point (the quantized 0.0), as pad.cc's EvalInt."""
    o_t = ctx.m.tensors[op.outputs[0]]
    return _lower_pad(ctx, op, int(o_t.zero_point[0]))


@register("PADV2", family="shape", validate=_pad_checks)
def lower_padv2(ctx, op):
    """Constant padding with the (quantized) constant value of the third input, as pad.cc's EvalInt."""
    value = np.asarray(ctx.m.tensors[op.inputs[2]].data).ravel()[0]
    return _lower_pad(ctx, op, int(value))


# ---------------------------------------------------------------------------------------------------------------
# CONCATENATION


CONCAT_OPTIONS = options("ConcatenationOptions", axis="Axis", activation=("FusedActivationFunction", ACTIVATIONS))


def _concat_axis(m, op):
    rank = len(m.tensors[op.outputs[0]].shape)
    axis = int(op.options.get("axis", 0))
    return axis + rank if axis < 0 else axis


def _concat_checks(m, op):
    _data_checks(m, op, range(len(op.inputs)))
    o = m.tensors[op.outputs[0]]
    ins = [m.tensors[i] for i in op.inputs]
    rank = len(o.shape)
    axis = _concat_axis(m, op)
    if op.options.get("activation", "NONE") != "NONE":
        m.fail("%s: fused activation %s; TFLite's CONCATENATION supports none."
               % (_what(op), op.options["activation"]))
    if not 0 <= axis < rank:
        m.fail("%s: axis %d is out of range for %d-D tensors." % (_what(op), op.options.get("axis", 0), rank))
    for t in ins:
        if len(t.shape) != rank or any(t.shape[d] != o.shape[d] for d in range(rank) if d != axis):
            m.fail("%s: input %r has shape %s, which does not concatenate along axis %d into the output %s."
                   % (_what(op), t.name, list(t.shape), axis, list(o.shape)))
    if sum(t.shape[axis] for t in ins) != o.shape[axis]:
        m.fail("%s: the inputs' sizes along axis %d do not add up to the output's %d."
               % (_what(op), axis, o.shape[axis]))
    if o.dtype == "int8":
        # concatenation.cc Prepare: the int8 kernel copies bytes and refuses any rescaling
        for t in ins:
            if float(t.scale[0]) != float(o.scale[0]) or int(t.zero_point[0]) != int(o.zero_point[0]):
                m.fail("%s: int8 input %r has scale %g / zero point %d but the output %g / %d; TFLite's int8 "
                       "CONCATENATION needs them equal (requantize the inputs first, e.g. convert again so the "
                       "converter unifies them)." % (_what(op), t.name, float(t.scale[0]),
                                                     int(t.zero_point[0]), float(o.scale[0]),
                                                     int(o.zero_point[0])))


def concat_rescale_table(in_scale, in_zp, out_scale, out_zp):
    """The uint8 -> uint8 map of reference_ops::ConcatenationWithScaling for one input, in its float32
    arithmetic: round(q * (in_scale * (1 / out_scale)) + (-in_zp * scale)) + out_zp, clamped to 0..255.
    None when that input is copied unchanged (same scale and zero point as the output)."""
    f32 = np.float32
    if int(in_zp) == int(out_zp) and f32(in_scale) == f32(out_scale):
        return None
    inverse = f32(1) / f32(out_scale)
    scale = f32(in_scale) * inverse
    bias = f32(-int(in_zp)) * scale
    table = np.empty(256, np.uint8)
    for q in range(256):
        v = f32(q) * scale + bias          # float32 multiply, then float32 add (no fused multiply-add)
        r = int(round_half_away(float(v))) + int(out_zp)
        table[q] = min(max(r, 0), 255)
    return table


@register("CONCATENATION", family="shape", options=CONCAT_OPTIONS,
          accepts={"activation": one_of(("NONE",), bad=(1, 9), label="fused activation")}, validate=_concat_checks)
def lower_concatenation(ctx, op):
    """reference_ops::Concatenation along any axis (int8: byte copies, equal quantization required); uint8 inputs
    quantized unlike the output go through ConcatenationWithScaling's float32 rescale, precomputed as a 256-entry
    table per input."""
    from tvm import te, tirx
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    ins = [m.tensors[i] for i in op.inputs]
    axis = _concat_axis(m, op)
    oshape = tuple(o_t.shape)
    starts = np.cumsum([0] + [t.shape[axis] for t in ins]).tolist()
    tables = [None] * len(ins)
    if o_t.dtype == "uint8":
        tables = [concat_rescale_table(t.scale[0], t.zero_point[0], o_t.scale[0], o_t.zero_point[0])
                  for t in ins]
    args = [ctx.operand(i, "concat_in") for i in op.inputs]
    lut_of = {}
    for k, tab in enumerate(tables):
        if tab is not None:
            lut_of[k] = len(args)
            args.append(ctx.const(tab, "concat_lut"))
    n_in = len(ins)

    def f(*ts):
        xs, luts = ts[:n_in], ts

        def piece(k, i):
            idx = list(i)
            idx[axis] = i[axis] - starts[k]
            v = xs[k](*idx)
            if k in lut_of:
                v = luts[lut_of[k]][v.astype("int32")]
            return v

        def body(*i):
            v = piece(n_in - 1, i)
            for k in range(n_in - 2, -1, -1):
                v = tirx.if_then_else(i[axis] < starts[k + 1], piece(k, i), v)
            return v

        return te.compute(oshape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# STRIDED_SLICE


STRIDED_SLICE_OPTIONS = options("StridedSliceOptions", begin_mask="BeginMask", end_mask="EndMask",
                                ellipsis_mask="EllipsisMask", new_axis_mask="NewAxisMask",
                                shrink_axis_mask="ShrinkAxisMask", offset=("Offset", bool))


def _clamp(v, lo, hi):
    return hi if v > hi else (lo if v < lo else v)


def strided_slice_plan(in_shape, begin, end, strides, opts):
    """The slice TFLite's STRIDED_SLICE takes, as [(input dim or None for a new axis, start, stride, count,
    shrink)] per effective dimension.

    Mirrors strided_slice.cc's BuildStridedSliceParams (ellipsis and new axes folded into begin/end masks over an
    effective input shape) and strided_slice_logic's StridedSliceStartForAxis / StridedSliceEndForAxis (clamping,
    negative indices, masks, shrink, offset); the count is the number of iterations of the reference loop."""
    in_shape = [int(d) for d in in_shape]
    begin, end, strides = [int(v) for v in begin], [int(v) for v in end], [int(v) for v in strides]
    ellipsis, new_axis = int(opts.get("ellipsis_mask", 0)), int(opts.get("new_axis_mask", 0))
    begin_mask_in, end_mask_in = int(opts.get("begin_mask", 0)), int(opts.get("end_mask", 0))
    shrink_in, offset = int(opts.get("shrink_axis_mask", 0)), bool(opts.get("offset", False))
    n_spec = len(begin)
    rank = len(in_shape)

    num_add_axis = sum(1 for i in range(n_spec) if not (ellipsis >> i) & 1 and (new_axis >> i) & 1)
    eff_dims = rank + num_add_axis
    eff_ellipsis, eff_new_axis = 0, 0
    ellipsis_start, expanded = eff_dims, 0
    i = 0
    while i < eff_dims:
        if (ellipsis >> i) & 1:
            ellipsis_start = i
            ellipsis_end = max(i + 1, min(i + 1 + num_add_axis + rank - n_spec, eff_dims))
            expanded = ellipsis_end - ellipsis_start - 1
            while i < ellipsis_end:
                eff_ellipsis |= 1 << i
                i += 1
            continue
        if i - expanded >= 0 and (new_axis >> (i - expanded)) & 1:
            eff_new_axis |= 1 << i
        i += 1

    dims = []   # per effective dim: [input dim or None, size, start_index, stop_index, stride, bmask, emask, shrink]
    added_ellipsis, added_axes = 0, 0
    for i in range(eff_dims):
        if (eff_ellipsis >> i) & 1:
            added_ellipsis = max(0, i - ellipsis_start)
            dims.append([i - added_axes, in_shape[i - added_axes], 0, 0, 1, True, True, False])
        elif (eff_new_axis >> i) & 1:
            dims.append([None, 1, 0, 1, 1, False, False, False])
            added_axes += 1
        elif i >= n_spec + expanded:
            dims.append([i - added_axes, in_shape[i - added_axes], 0, 0, 1, True, True, False])
        else:
            k = i - added_ellipsis
            dims.append([i - added_axes, in_shape[i - added_axes], begin[k], end[k], strides[k],
                         bool((begin_mask_in >> k) & 1), bool((end_mask_in >> k) & 1),
                         bool((shrink_in >> k) & 1)])
    if eff_dims > 5:
        raise ValueError("%d effective dimensions (TFLite allows at most 5)" % eff_dims)

    plan = []
    for src, size, b, e, s, bm, em, shrink in dims:
        if s == 0:
            raise ValueError("stride 0")
        # StridedSliceStartForAxis
        start = b + size if b < 0 else b
        start = _clamp(start, 0, size) if s > 0 else _clamp(start, -1, size - 1)
        if bm:
            start = 0 if s > 0 else size - 1
        # StridedSliceEndForAxis
        if shrink:
            stop = start if start >= size else start + 1
        else:
            stop = e + start if offset else e
            stop = stop + size if stop < 0 else stop
            stop = _clamp(stop, 0, size) if s > 0 else _clamp(stop, -1, size - 1)
            if em:
                stop = size if s > 0 else -1
        if s > 0:
            count = max(0, (stop - start + s - 1) // s)
        else:
            count = max(0, (start - stop + (-s) - 1) // (-s))
        if offset and not shrink:
            # ResizeOutputTensor sizes an offset slice from the raw end value at the effective index; a slice
            # that then disagrees with the loop (it runs past the input) leaves part of TFLite's output unset
            e_raw = end[len(plan)] if len(plan) < len(end) else None
            if e_raw is None or max(0, math.ceil(e_raw / s)) != count:
                raise ValueError("an offset slice that runs past the input")
        plan.append((src, start, s, count, shrink))
    return plan


def _strided_slice_plan(m, op):
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    b = const_input(m, op, 1, "begin")
    e = const_input(m, op, 2, "end")
    s = const_input(m, op, 3, "strides")
    if (not (b.ndim == e.ndim == s.ndim == 1 and b.size == e.size == s.size)
            or any(a.dtype != np.int32 for a in (b, e, s))):
        m.fail("%s: begin, end and strides must be 1-D int32 tensors of one length." % _what(op))
    if len(x.shape) > 5:
        m.fail("%s: %d-D input; TFLite slices at most 5-D tensors." % (_what(op), len(x.shape)))
    try:
        plan = strided_slice_plan(x.shape, b.tolist(), e.tolist(), s.tolist(), op.options)
    except ValueError as err:
        m.fail("%s: unsupported slice (%s)." % (_what(op), err))
    out = tuple(c for _, _, _, c, shrink in plan if not shrink)
    if out != tuple(o.shape) or any(c < 1 for _, _, _, c, _ in plan):
        m.fail("%s: the slice of %s by begin %s, end %s, strides %s (options %s) yields shape %s, but the output "
               "tensor is %s." % (_what(op), list(x.shape), b.tolist(), e.tolist(), s.tolist(), op.options,
                                  list(out), list(o.shape)))
    return plan


def _strided_slice_checks(m, op):
    _data_checks(m, op)
    _strided_slice_plan(m, op)


@register("STRIDED_SLICE", family="shape", options=STRIDED_SLICE_OPTIONS, validate=_strided_slice_checks)
def lower_strided_slice(ctx, op):
    """reference_ops::StridedSlice: output element i of every kept dimension reads input start + i * stride; the
    start, stride and count per dimension are computed at codegen time by strided_slice.cc's rules (masks,
    ellipsis, new and shrunk axes, negative and clamped indices, offset)."""
    from tvm import te
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    plan = _strided_slice_plan(m, op)
    rank_in = len(m.tensors[op.inputs[0]].shape)
    oshape = tuple(o_t.shape)

    def f(x):
        def body(*i):
            idx = [None] * rank_in
            k = 0
            for src, start, stride, count, shrink in plan:
                if shrink:
                    pos = i32(start)
                else:
                    pos = i[k] * stride + start if count > 1 else i32(start)
                    k += 1
                if src is not None:
                    idx[src] = pos
            return x(*idx)
        return te.compute(oshape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0


# ---------------------------------------------------------------------------------------------------------------
# RESIZE_NEAREST_NEIGHBOR


RESIZE_NN_OPTIONS = options("ResizeNearestNeighborOptions", align_corners=("AlignCorners", bool),
                            half_pixel_centers=("HalfPixelCenters", bool))


def nearest_neighbor_sources(out_size, in_size, align_corners, half_pixel_centers):
    """The input row (column) each output row (column) copies: reference_ops::GetNearestNeighbor in its float32
    arithmetic (scale and (i + offset) * scale rounded to float32, then round-half-away or floor)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    src = []
    for i in range(out_size):
        v = float((f32(i) + offset) * scale)
        s = int(round_half_away(v)) if align_corners else int(math.floor(v))
        s = min(s, in_size - 1)
        if half_pixel_centers:
            s = max(0, s)
        src.append(s)
    return src


def _resize_nn_checks(m, op):
    _data_checks(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    size = const_input(m, op, 1, "output size")
    if len(x.shape) != 4 or len(o.shape) != 4 or o.shape[0] != x.shape[0] or o.shape[3] != x.shape[3]:
        m.fail("%s: only 4-D NHWC input and output with equal batch and channels are supported (got %s -> %s)."
               % (_what(op), list(x.shape), list(o.shape)))
    if size.size != 2 or [int(v) for v in size.ravel()] != list(o.shape[1:3]):
        m.fail("%s: the size tensor %s does not match the output's height and width %s."
               % (_what(op), size.ravel().tolist(), list(o.shape[1:3])))


@register("RESIZE_NEAREST_NEIGHBOR", family="shape", options=RESIZE_NN_OPTIONS, validate=_resize_nn_checks)
def lower_resize_nearest_neighbor(ctx, op):
    """reference_ops::ResizeNearestNeighbor: output pixel (y, x) copies input pixel (src_y[y], src_x[x]); the
    source rows and columns are computed at codegen time with GetNearestNeighbor's float32 arithmetic
    (align_corners, half_pixel_centers) and become a closed form when one is exact, else constant tables."""
    from tvm import te
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    _, H, W, C = x_t.shape
    _, OH, OW, _ = o_t.shape
    ac = bool(op.options.get("align_corners", False))
    hp = bool(op.options.get("half_pixel_centers", False))
    rows = nearest_neighbor_sources(OH, H, ac, hp)
    cols = nearest_neighbor_sources(OW, W, ac, hp)
    args = [ctx.operand(op.inputs[0])]
    row_of = _source_index(ctx, rows, H, "resize_rows", args)
    col_of = _source_index(ctx, cols, W, "resize_cols", args)

    def f(x, *tabs):
        ts = (x,) + tabs
        return te.compute((x_t.shape[0], OH, OW, C),
                          lambda b, y, xx, c: x[b, row_of(ts, y), col_of(ts, xx), c], name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0


def _source_index(ctx, src, in_size, hint, args):
    """The source index list `src` (one entry per output index) as a function (tensors, o) -> index: the identity,
    a constant, or an integer closed form min((o * num + add) // den, in_size - 1) when one reproduces the list
    exactly (checked here, entry by entry), else a constant int32 table appended to `args`."""
    from tvm import tirx
    n = len(src)
    if src == list(range(n)):
        return lambda ts, o: o
    if n == 1:
        return lambda ts, o: i32(src[0])
    # floor(o * in / out), floor((o + 1/2) * in / out), round(o * (in-1) / (out-1)), round((o + 1/2) * (in-1) /
    # (out-1)) in integers: the float32 computation usually equals one of them, but not always (e.g. 14 -> 23
    # rows with half-pixel centers), so every entry is compared and any disagreement falls back to the table
    forms = [(in_size, 0, n), (2 * in_size, in_size, 2 * n),
             (2 * (in_size - 1), n - 1, 2 * (n - 1)), (2 * (in_size - 1), in_size + n - 2, 2 * (n - 1))]
    for num, add, den in forms:
        if den and all(min((o * num + add) // den, in_size - 1) == src[o] for o in range(n)):
            clamp = any((o * num + add) // den > in_size - 1 for o in range(n))

            def closed(ts, o, num=num, add=add, den=den, clamp=clamp):
                v = tirx.floordiv(o * num + add, den)
                return tirx.min(v, i32(in_size - 1)) if clamp else v
            return closed
    k = len(args)
    args.append(ctx.const(np.asarray(src, np.int32), hint))
    return lambda ts, o: ts[k][o]


# ---------------------------------------------------------------------------------------------------------------
# TRANSPOSE


def _transpose_perm(m, op):
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    perm = [int(v) for v in const_input(m, op, 1, "permutation").ravel()]
    rank = len(x.shape)
    # transpose.cc Prepare takes no negative entries
    if sorted(perm) != list(range(rank)) or rank > 6:
        m.fail("%s: permutation %s is not a permutation of the %d input dimensions (TFLite allows up to 6)."
               % (_what(op), perm, rank))
    if tuple(x.shape[p] for p in perm) != tuple(o.shape):
        m.fail("%s: input %s permuted by %s does not give the output shape %s."
               % (_what(op), list(x.shape), perm, list(o.shape)))
    return perm


def _transpose_checks(m, op):
    _data_checks(m, op)
    _transpose_perm(m, op)


@register("TRANSPOSE", family="shape", validate=_transpose_checks)
def lower_transpose(ctx, op):
    """reference_ops::Transpose: output dimension d is input dimension perm[d] (a byte gather)."""
    from tvm import te
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    perm = _transpose_perm(m, op)

    def f(x):
        def body(*i):
            idx = [None] * len(perm)
            for d, p in enumerate(perm):
                idx[p] = i[d]
            return x(*idx)
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0
