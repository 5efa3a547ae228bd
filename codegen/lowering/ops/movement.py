"""Ops that copy int8/uint8 values to other places, several outputs included: PACK, UNPACK, SPLIT, SPLIT_V, TILE,
GATHER; and RESIZE_BILINEAR (int8: TFLite's integer interpolation in 1/1024 steps).

As in shape.py, every index TFLite's reference kernel computes per call is computed here once, in Python; the
kernels only gather bytes.  An op with several outputs (UNPACK, SPLIT, SPLIT_V) is one kernel per output
(LoweringContext.emit(..., output=k)), so each output is a tensor of the memory plan like any other.
"""

import numpy as np

from ..quant import i32
from ..registry import _what, at_least, const_input, one_of, options, register, same_quantization


def _int8_activations(m, op, data_inputs, outputs=None):
    """The data inputs and every output are int8/uint8 of one type with per-tensor quantization."""
    ts = [m.tensors[i] for i in data_inputs] + [m.tensors[i] for i in (op.outputs if outputs is None else outputs)]
    dt = ts[-1].dtype
    for t in ts:
        if t.dtype != dt or t.dtype not in ("int8", "uint8") or not (t.is_quantized and len(t.scale) == 1):
            m.fail("%s: tensor %r is %s%s; only int8/uint8 tensors with one scale and zero point (all of the same "
                   "type) are supported." % (_what(op), t.name, t.dtype,
                                             "" if t.is_quantized and len(t.scale) == 1 else
                                             " without per-tensor quantization"))


def _axis(m, op, axis, rank, what="axis"):
    if not -rank <= axis < rank:
        m.fail("%s: %s %d is out of range for %d-D tensors." % (_what(op), what, axis, rank))
    return axis % rank


# ---------------------------------------------------------------------------------------------------------------
# PACK, UNPACK


def _pack_checks(m, op):
    _int8_activations(m, op, op.inputs)
    o = m.tensors[op.outputs[0]]
    ins = [m.tensors[i] for i in op.inputs]
    n = int(op.options.get("values_count", len(ins)))
    if n != len(ins):
        m.fail("%s: values_count %d but %d inputs." % (_what(op), n, len(ins)))
    axis = _axis(m, op, int(op.options.get("axis", 0)), len(o.shape))
    for t in ins:
        if t.shape != ins[0].shape:
            m.fail("%s: inputs of different shapes %s and %s." % (_what(op), list(ins[0].shape), list(t.shape)))
    want = list(ins[0].shape[:axis]) + [len(ins)] + list(ins[0].shape[axis:])
    if list(o.shape) != want:
        m.fail("%s: packing %d inputs of shape %s along axis %d gives %s, but the output tensor is %s."
               % (_what(op), len(ins), list(ins[0].shape), axis, want, list(o.shape)))
    for i in op.inputs:        # pack.cc Prepare: a quantized PACK copies bytes, its inputs quantized as its output
        same_quantization(m, op, i, op.outputs[0])


@register("PACK", family="shape", options=options("PackOptions", values_count="ValuesCount", axis="Axis"),
          validate=_pack_checks)
def lower_pack(ctx, op):
    """reference_ops::Pack: the inputs stacked along a new axis (byte copies; equal quantization required)."""
    from tvm import te, tirx
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    axis = int(op.options.get("axis", 0)) % len(o_t.shape)
    n = len(op.inputs)
    args = [ctx.operand(i, "pack_in") for i in op.inputs]

    def f(*xs):
        def body(*i):
            rest = list(i[:axis]) + list(i[axis + 1:])
            v = xs[n - 1](*rest)
            for k in range(n - 2, -1, -1):
                v = tirx.if_then_else(i[axis] == k, xs[k](*rest), v)
            return v
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0


def _unpack_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    x = m.tensors[op.inputs[0]]
    axis = _axis(m, op, int(op.options.get("axis", 0)), len(x.shape))
    n = int(op.options.get("num", len(op.outputs)))
    want = list(x.shape[:axis]) + list(x.shape[axis + 1:])
    if n != x.shape[axis] or len(op.outputs) != n:
        m.fail("%s: num %d and %d outputs, but the input has %d along axis %d." % (_what(op), n, len(op.outputs),
                                                                                  x.shape[axis], axis))
    for i in op.outputs:
        if list(m.tensors[i].shape) != want:
            m.fail("%s: output %r has shape %s; unpacking %s along axis %d gives %s."
                   % (_what(op), m.tensors[i].name, list(m.tensors[i].shape), list(x.shape), axis, want))


@register("UNPACK", family="shape", options=options("UnpackOptions", num="Num", axis="Axis"),
          validate=_unpack_checks)
def lower_unpack(ctx, op):
    """reference_ops::Unpack: output k is the input's slice k along the axis, which it drops (every output)."""
    from tvm import te
    m = ctx.m
    x_t = m.tensors[op.inputs[0]]
    axis = int(op.options.get("axis", 0)) % len(x_t.shape)
    x = ctx.operand(op.inputs[0])
    for k, ti in enumerate(op.outputs):
        shape = tuple(m.tensors[ti].shape)

        def f(x, k=k):
            return te.compute(shape, lambda *i: x(*(list(i[:axis]) + [i32(k)] + list(i[axis:]))), name="out")
        ctx.values[ti] = ctx.emit(op, f, [x], output=k)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# SPLIT, SPLIT_V


def _split_parts(m, op):
    """(data input index, axis, [size of each output along the axis])."""
    if op.type == "SPLIT":
        data, axis_in = op.inputs[1], 0
    else:
        data, axis_in = op.inputs[0], 2
    x = m.tensors[data]
    a = const_input(m, op, axis_in, "axis").ravel()
    if a.size != 1:
        m.fail("%s: the axis must be one value (got %s)." % (_what(op), a.tolist()))
    axis = _axis(m, op, int(a[0]), len(x.shape))
    sizes = [m.tensors[i].shape[axis] if len(m.tensors[i].shape) == len(x.shape) else -1 for i in op.outputs]
    return data, axis, sizes


def _split_checks(m, op):
    data, axis, sizes = _split_parts(m, op)
    _int8_activations(m, op, [data])
    x = m.tensors[data]
    n = int(op.options.get("num_splits", len(op.outputs)))
    if n != len(op.outputs):
        m.fail("%s: num_splits %d but %d outputs." % (_what(op), n, len(op.outputs)))
    if op.type == "SPLIT" and x.shape[axis] % n:
        m.fail("%s: %d does not split into %d equal parts." % (_what(op), x.shape[axis], n))
    if op.type == "SPLIT_V":
        want = [int(v) for v in const_input(m, op, 1, "size_splits").ravel()]
        if want.count(-1) == 1:
            want[want.index(-1)] = x.shape[axis] - sum(v for v in want if v != -1)
        if want != sizes:
            m.fail("%s: size_splits %s do not match the outputs' sizes %s along axis %d."
                   % (_what(op), want, sizes, axis))
    for i, s in zip(op.outputs, sizes):
        t = m.tensors[i]
        if s < 1 or [d for k, d in enumerate(t.shape) if k != axis] != [d for k, d in enumerate(x.shape) if k != axis]:
            m.fail("%s: output %r has shape %s, which is no part of %s split along axis %d."
                   % (_what(op), t.name, list(t.shape), list(x.shape), axis))
    if sum(sizes) != x.shape[axis]:
        m.fail("%s: the outputs' sizes %s along axis %d do not add up to the input's %d."
               % (_what(op), sizes, axis, x.shape[axis]))


def _lower_split(ctx, op):
    from tvm import te
    m = ctx.m
    data, axis, sizes = _split_parts(m, op)
    x = ctx.operand(data)
    start = 0
    for k, (ti, size) in enumerate(zip(op.outputs, sizes)):
        shape = tuple(m.tensors[ti].shape)

        def f(x, start=start):
            def body(*i):
                idx = list(i)
                idx[axis] = i[axis] + start
                return x(*idx)
            return te.compute(shape, body, name="out")
        ctx.values[ti] = ctx.emit(op, f, [x], output=k)
        start += size
    return 0


@register("SPLIT", family="shape", options=options("SplitOptions", num_splits="NumSplits"), validate=_split_checks)
def lower_split(ctx, op):
    """reference_ops::Split into equal parts along a constant axis: one byte-copy kernel per output."""
    return _lower_split(ctx, op)


@register("SPLIT_V", family="shape", options=options("SplitVOptions", num_splits="NumSplits"),
          validate=_split_checks)
def lower_split_v(ctx, op):
    """reference_ops::Split into parts of the constant size_splits (one -1 inferred): one kernel per output."""
    return _lower_split(ctx, op)


# ---------------------------------------------------------------------------------------------------------------
# TILE, GATHER


def _tile_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    mult = [int(v) for v in const_input(m, op, 1, "multiples").ravel()]
    if len(mult) != len(x.shape) or any(v < 1 for v in mult) or \
            [d * k for d, k in zip(x.shape, mult)] != list(o.shape):
        m.fail("%s: input %s tiled by multiples %s does not give the output shape %s."
               % (_what(op), list(x.shape), mult, list(o.shape)))


@register("TILE", family="shape", validate=_tile_checks)
def lower_tile(ctx, op):
    """reference_ops::Tile: output element i reads input element i mod the input's shape (byte copies)."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]

    def f(x):
        return te.compute(tuple(o_t.shape), lambda *i: x(*[tirx.floormod(v, d) if d > 1 else i32(0) if d == 1 else v
                                                             for v, d in zip(i, x_t.shape)]), name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0], "tile_in")])
    return 0


def _gather_indices(m, op):
    """(axis, the constant indices as int32, or None for indices computed at run time, e.g. by ARG_MAX)."""
    x = m.tensors[op.inputs[0]]
    if len(op.inputs) >= 2 and op.inputs[1] >= 0 and not m.tensors[op.inputs[1]].is_const:
        t = m.tensors[op.inputs[1]]
        if t.dtype not in ("int32", "int64"):
            m.fail("%s: the indices %r are %s; TFLite's GATHER takes int32 or int64 indices."
                   % (_what(op), t.name, t.dtype))
        return _axis(m, op, int(op.options.get("axis", 0)), len(x.shape)), None
    idx = const_input(m, op, 1, "indices")
    if idx.dtype.kind not in "iu":
        m.fail("%s: the indices are %s, not integers." % (_what(op), idx.dtype))
    axis = _axis(m, op, int(op.options.get("axis", 0)), len(x.shape))
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
        m.fail("%s: index %d is out of range 0..%d of axis %d (TFLite's GATHER refuses it)."
               % (_what(op), int(idx.min() if idx.min() < 0 else idx.max()), x.shape[axis] - 1, axis))
    return axis, idx.astype(np.int32)


def _gather_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    if int(op.options.get("batch_dims", 0)) != 0:
        m.fail("%s: batch_dims %d is not supported (only 0)." % (_what(op), op.options["batch_dims"]))
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axis, idx = _gather_indices(m, op)
    ishape = list(m.tensors[op.inputs[1]].shape) if idx is None else list(idx.shape)
    want = list(x.shape[:axis]) + ishape + list(x.shape[axis + 1:])
    if want != list(o.shape):
        m.fail("%s: gathering indices of shape %s along axis %d of %s gives %s, but the output tensor is %s."
               % (_what(op), ishape, axis, list(x.shape), want, list(o.shape)))


@register("GATHER", family="shape", options=options("GatherOptions", axis="Axis", batch_dims="BatchDims"),
          validate=_gather_checks)
def lower_gather(ctx, op):
    """reference_ops::Gather (batch_dims 0): constant indices are an index table (a single one a constant); int32
    or int64 indices computed at run time (ARG_MAX's) are read by the kernel."""
    from tvm import te
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    axis, idx = _gather_indices(m, op)
    if idx is None:
        return _lower_gather_run_time(ctx, op, axis)
    k = idx.ndim
    args = [ctx.operand(op.inputs[0], "gather_in")]
    if idx.size > 1:
        args.append(ctx.const(idx.reshape(idx.shape or (1,)), "gather_idx"))

    def f(x, *tab):
        def body(*i):
            j = i[axis:axis + k]
            if tab:
                pos = tab[0](*j) if k else tab[0](i32(0))
            else:
                pos = i32(int(idx.ravel()[0]))
            return x(*(list(i[:axis]) + [pos] + list(i[axis + k:])))
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0


def _lower_gather_run_time(ctx, op, axis):
    """GATHER with indices computed at run time (ARG_MAX's): the output reads the input at the index the tensor
    holds, clamped into the axis (TFLite's Gather stops the whole inference at an index out of range; the C stays
    inside the input instead)."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t, i_t = (m.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[1]))
    k = len(i_t.shape)
    n = x_t.shape[axis]

    def f(x, ind):
        def body(*i):
            j = i[axis:axis + k]
            pos = (ind(*j) if k else ind()).astype("int32")
            pos = tirx.max(tirx.min(pos, i32(n - 1)), i32(0))
            return x(*(list(i[:axis]) + [pos] + list(i[axis + k:])))
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0], "gather_in"),
                                                 ctx.operand(op.inputs[1], "gather_idx")])
    return 0


# ---------------------------------------------------------------------------------------------------------------
# RESIZE_BILINEAR


RESIZE_BILINEAR_OPTIONS = options("ResizeBilinearOptions", align_corners=("AlignCorners", bool),
                                  half_pixel_centers=("HalfPixelCenters", bool))


def _cdiv(a, b):
    """C's integer division (toward zero) for b > 0."""
    return -((-a) // b) if a < 0 else a // b


def bilinear_taps(out_size, in_size, align_corners, half_pixel_centers):
    """Per output row (column): (lower source, upper source, weight of the upper one in 1/1024) as
    reference_ops::ComputeInterpolationValuesInteger computes them (int32, C division); the lower one's weight
    is 1024 - weight."""
    scale = ((1 << 10) * in_size + out_size // 2) // out_size
    if align_corners and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    taps = []
    for v in range(out_size):
        scaled = v * scale + scale // 2 - (1 << 9) if half_pixel_centers else v * scale
        lo = max(_cdiv(scaled, 1 << 10), 0)
        hi = min(_cdiv(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        taps.append((lo, hi, scaled - (1 << 10) * lo))
    return taps


def _resize_bilinear_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if o.dtype != "int8":
        m.fail("%s: a %s RESIZE_BILINEAR is interpolated by TFLite's reference kernel in float arithmetic, which C "
               "compilers may contract differently; only int8 (TFLite's integer kernel) is supported."
               % (_what(op), o.dtype))
    if op.options.get("align_corners") and op.options.get("half_pixel_centers"):
        m.fail("%s: align_corners and half_pixel_centers are both set; TFLite allows at most one."
               % _what(op))
    size = const_input(m, op, 1, "output size")
    if len(x.shape) != 4 or len(o.shape) != 4 or o.shape[0] != x.shape[0] or o.shape[3] != x.shape[3]:
        m.fail("%s: only 4-D NHWC input and output with equal batch and channels are supported (got %s -> %s)."
               % (_what(op), list(x.shape), list(o.shape)))
    if size.size != 2 or [int(v) for v in size.ravel()] != list(o.shape[1:3]):
        m.fail("%s: the size tensor %s does not match the output's height and width %s."
               % (_what(op), size.ravel().tolist(), list(o.shape[1:3])))


@register("RESIZE_BILINEAR", family="shape", options=RESIZE_BILINEAR_OPTIONS, validate=_resize_bilinear_checks)
def lower_resize_bilinear(ctx, op):
    """int8 reference_ops::ResizeBilinearInteger (align_corners, half_pixel_centers): the four neighbours weighted
    in 1/1024 steps (source rows, columns and weights computed at codegen time, constant tables), the sum rounded
    half away from zero by 2^20 (TFLite's double-rounding build); every product fits int32."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    _, H, W, C = x_t.shape
    _, OH, OW, _ = o_t.shape
    ac = bool(op.options.get("align_corners", False))
    hp = bool(op.options.get("half_pixel_centers", False))
    rows = np.asarray(bilinear_taps(OH, H, ac, hp), np.int32)          # [OH, 3]: y0, y1, wy
    cols = np.asarray(bilinear_taps(OW, W, ac, hp), np.int32)
    args = [ctx.operand(op.inputs[0]), ctx.const(rows, "bilinear_rows"), ctx.const(cols, "bilinear_cols")]
    one = i32(1 << 10)

    def f(x, ry, rx):
        def body(b, y, xx, c):
            y0, y1, wy = ry[y, 0], ry[y, 1], ry[y, 2]
            x0, x1, wx = rx[xx, 0], rx[xx, 1], rx[xx, 2]

            def px(yy, xs):
                return x[b, yy, xs, c].astype("int32")
            s = (px(y0, x0) * (one - wy) * (one - wx) + px(y1, x0) * wy * (one - wx)
                 + px(y0, x1) * (one - wy) * wx + px(y1, x1) * wy * wx)
            r = tirx.Select(s > i32(0), i32(1 << 19), i32(-(1 << 19)))
            return tirx.truncdiv(s + r, i32(1 << 20)).astype("int8")
        return te.compute((x_t.shape[0], OH, OW, C), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# EXPAND_DIMS, DEPTH_TO_SPACE, SPACE_TO_DEPTH, MIRROR_PAD, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND (byte copies: the
# kernels of TFLite copy the raw values whatever the quantization, and so does the generated C)


def _expand_dims_axis(m, op):
    x = m.tensors[op.inputs[0]]
    a = const_input(m, op, 1, "axis")
    if a.size != 1 or a.dtype.kind not in "iu":
        m.fail("%s: the axis must be one integer (got %s %s)." % (_what(op), a.dtype, a.ravel().tolist()))
    return _axis(m, op, int(a.ravel()[0]), len(x.shape) + 1)


def _expand_dims_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axis = _expand_dims_axis(m, op)
    want = list(x.shape[:axis]) + [1] + list(x.shape[axis:])
    if want != list(o.shape):
        m.fail("%s: a dimension inserted at %d of %s gives %s, but the output tensor is %s."
               % (_what(op), axis, list(x.shape), want, list(o.shape)))


@register("EXPAND_DIMS", family="shape", validate=_expand_dims_checks)
def lower_expand_dims(ctx, op):
    """A size-1 dimension inserted at the constant axis (negative counts from the end, as expand_dims.cc): no
    kernel, the planner aliases the storage."""
    o_t = ctx.m.tensors[op.outputs[0]]
    ctx.values[op.outputs[0]] = ctx.reshape(ctx.operand(op.inputs[0]), o_t.shape)
    return 0


def _block_size(m, op):
    bs = int(op.options.get("block_size", 0))
    if bs < 1:
        m.fail("%s: block size %d; TFLite needs one >= 1." % (_what(op), bs))
    x = m.tensors[op.inputs[0]]
    if len(x.shape) != 4:
        m.fail("%s: only 4-D NHWC tensors are supported by TFLite (got %s)." % (_what(op), list(x.shape)))
    return bs


def _depth_space_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    bs = _block_size(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    b, h, w, c = x.shape
    if op.type == "DEPTH_TO_SPACE":
        if c % (bs * bs):
            m.fail("%s: %d channels do not divide into blocks of %d x %d (TFLite refuses it)."
                   % (_what(op), c, bs, bs))
        want = [b, h * bs, w * bs, c // (bs * bs)]
    else:
        if h % bs or w % bs:
            m.fail("%s: height %d and width %d must be multiples of the block size %d (TFLite refuses it)."
                   % (_what(op), h, w, bs))
        want = [b, h // bs, w // bs, c * bs * bs]
    if want != list(o.shape):
        m.fail("%s: block size %d turns %s into %s, but the output tensor is %s."
               % (_what(op), bs, list(x.shape), want, list(o.shape)))


@register("DEPTH_TO_SPACE", family="shape", options=options("DepthToSpaceOptions", block_size="BlockSize"),
          accepts={"block_size": at_least(1)}, validate=_depth_space_checks)
def lower_depth_to_space(ctx, op):
    """reference_ops::DepthToSpace: output (b, h * bs + dy, w * bs + dx, c) is input (b, h, w, (dy * bs + dx) * C
    + c), C the output's channels (a byte gather)."""
    from tvm import te, tirx
    o_t = ctx.m.tensors[op.outputs[0]]
    bs = int(op.options.get("block_size", 0))
    C = o_t.shape[3]

    def f(x):
        def body(b, y, xx, c):
            dy, dx = tirx.floormod(y, bs), tirx.floormod(xx, bs)
            return x[b, tirx.floordiv(y, bs), tirx.floordiv(xx, bs), (dy * bs + dx) * C + c]
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0


@register("SPACE_TO_DEPTH", family="shape", options=options("SpaceToDepthOptions", block_size="BlockSize"),
          accepts={"block_size": at_least(1)}, validate=_depth_space_checks)
def lower_space_to_depth(ctx, op):
    """reference_ops::SpaceToDepth: output (b, h, w, (dy * bs + dx) * C + c) is input (b, h * bs + dy, w * bs + dx,
    c), C the input's channels (a byte gather)."""
    from tvm import te, tirx
    x_t, o_t = ctx.m.tensors[op.inputs[0]], ctx.m.tensors[op.outputs[0]]
    bs = int(op.options.get("block_size", 0))
    C = x_t.shape[3]

    def f(x):
        def body(b, y, xx, k):
            blk, c = tirx.floordiv(k, C), tirx.floormod(k, C)
            return x[b, y * bs + tirx.floordiv(blk, bs), xx * bs + tirx.floormod(blk, bs), c]
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0


MIRROR_PAD_MODES = {0: "REFLECT", 1: "SYMMETRIC"}


def _mirror_paddings(m, op):
    x = m.tensors[op.inputs[0]]
    p = const_input(m, op, 1, "paddings")
    rank = len(x.shape)
    if p.shape != (rank, 2) or p.dtype.kind not in "iu":
        m.fail("%s: the paddings tensor has shape %s and type %s; TFLite needs an integer [%d, 2] tensor."
               % (_what(op), list(p.shape), p.dtype, rank))
    pads = [(int(a), int(b)) for a, b in p.tolist()]
    reflect = op.options.get("mode", "REFLECT") == "REFLECT"
    for d, (a, b) in enumerate(pads):
        most = x.shape[d] - 1 if reflect else x.shape[d]
        if a < 0 or b < 0 or max(a, b) > most:
            m.fail("%s: paddings %s of dimension %d (size %d) are outside 0..%d, which %s mirroring allows "
                   "(TensorFlow refuses them; TFLite would read outside the input)."
                   % (_what(op), [a, b], d, x.shape[d], most, op.options.get("mode", "REFLECT")))
    return pads


def _mirror_pad_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    pads = _mirror_paddings(m, op)
    want = [d + a + b for d, (a, b) in zip(x.shape, pads)]
    if want != list(o.shape):
        m.fail("%s: input %s padded by %s is %s, but the output tensor is %s."
               % (_what(op), list(x.shape), pads, want, list(o.shape)))


@register("MIRROR_PAD", family="shape", options=options("MirrorPadOptions", mode=("Mode", MIRROR_PAD_MODES)),
          accepts={"mode": one_of(("REFLECT", "SYMMETRIC"), bad=(2, 7), label="mode")}, validate=_mirror_pad_checks)
def lower_mirror_pad(ctx, op):
    """mirror_pad.cc: each output index reads the input index GetInputDimension gives (REFLECT leaves the border
    element out of the mirror, SYMMETRIC repeats it), any rank (a byte gather)."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    pads = _mirror_paddings(m, op)
    off = 1 if op.options.get("mode", "REFLECT") == "REFLECT" else 0

    def source(i, n, a):
        # GetInputDimension: left of the input, inside it, right of it
        left = i32(a - 1 + off) - tirx.min(i, i32(a - 1))
        right = i32(n - 1 - off) - tirx.min(i - i32(a + n), i32(max(n - 1 - off, 0)))
        inside = i - i32(a)
        v = tirx.Select(i >= i32(a + n), tirx.max(right, i32(0)), inside)
        return tirx.Select(i < i32(a), left, v) if a else v

    def f(x):
        def body(*i):
            return x(*[source(v, n, a) if (a or b) else v for v, n, (a, b) in zip(i, x_t.shape, pads)])
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0


def _space_batch_plan(m, op):
    """(block [bh, bw], [[top, bottom], [left, right]] paddings or crops) with 3-D tensors seen as 4-D (W = 1),
    as space_to_batch_nd.cc / batch_to_space_nd.cc extend them."""
    x = m.tensors[op.inputs[0]]
    if len(x.shape) not in (3, 4):
        m.fail("%s: only 3-D and 4-D tensors are supported by TFLite (got %s)." % (_what(op), list(x.shape)))
    block = const_input(m, op, 1, "block shape")
    pads = const_input(m, op, 2, "paddings" if op.type == "SPACE_TO_BATCH_ND" else "crops")
    sp = len(x.shape) - 2
    if block.shape != (sp,) or pads.shape != (sp, 2) or block.dtype.kind not in "iu" or pads.dtype.kind not in "iu":
        m.fail("%s: the block shape must be an integer [%d] tensor and the %s an integer [%d, 2] one (got %s and "
               "%s)." % (_what(op), sp, "paddings" if op.type == "SPACE_TO_BATCH_ND" else "crops", sp,
                         list(block.shape), list(pads.shape)))
    block = [int(v) for v in block] + [1] * (2 - sp)
    pads = [[int(a), int(b)] for a, b in pads.tolist()] + [[0, 0]] * (2 - sp)
    if any(v < 1 for v in block) or any(v < 0 for p in pads for v in p):
        m.fail("%s: block shape %s must be >= 1 and paddings/crops %s >= 0." % (_what(op), block, pads))
    return block, pads


def _shape4(t):
    s = list(t.shape)
    return s[:2] + [1] + s[2:] if len(s) == 3 else s


def _space_to_batch_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    same_quantization(m, op, op.inputs[0], op.outputs[0])     # space_to_batch_nd.cc Prepare refuses others
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    (bh, bw), ((t, btm), (lft, r)) = _space_batch_plan(m, op)
    b, h, w, c = _shape4(x)
    ph, pw = h + t + btm, w + lft + r
    if ph % bh or pw % bw:
        m.fail("%s: the padded height %d and width %d must be multiples of the block shape %s (TFLite refuses "
               "it)." % (_what(op), ph, pw, [bh, bw]))
    want = [b * bh * bw, ph // bh, pw // bw, c]
    if want != _shape4(o) or len(o.shape) != len(x.shape):
        m.fail("%s: block shape %s and paddings turn %s into %s, but the output tensor is %s."
               % (_what(op), [bh, bw], list(x.shape), want, list(o.shape)))


@register("SPACE_TO_BATCH_ND", family="shape", validate=_space_to_batch_checks)
def lower_space_to_batch_nd(ctx, op):
    """reference_ops::SpaceToBatchND: output batch (sy * bw + sx) * B + b, pixel (y, x) is the padded input's
    (b, y * bh + sy, x * bw + sx); the padding is the output's zero point (space_to_batch_nd.cc), 3-D as 4-D."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    (bh, bw), ((top, _), (left, _)) = _space_batch_plan(m, op)
    B, H, W, _ = _shape4(x_t)
    three = len(x_t.shape) == 3
    fill = tirx.const(int(o_t.zero_point[0]), o_t.dtype)

    def f(x):
        def body(ob, y, xx, c):
            b = tirx.floormod(ob, B)
            blk = tirx.floordiv(ob, B)
            sy, sx = tirx.floordiv(blk, bw), tirx.floormod(blk, bw)
            iy, ix = y * bh + sy - top, xx * bw + sx - left
            inside = tirx.all(iy >= 0, iy < H, ix >= 0, ix < W)
            cy = tirx.max(tirx.min(iy, H - 1), 0)
            cx = tirx.max(tirx.min(ix, W - 1), 0)
            v = x[b, cy, c] if three else x[b, cy, cx, c]
            return tirx.if_then_else(inside, v, fill)
        if three:
            return te.compute(tuple(o_t.shape), lambda ob, y, c: body(ob, y, i32(0), c), name="out")
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0


def _batch_to_space_checks(m, op):
    _int8_activations(m, op, op.inputs[:1])
    same_quantization(m, op, op.inputs[0], op.outputs[0])     # batch_to_space_nd.cc Prepare refuses others
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    (bh, bw), ((t, btm), (lft, r)) = _space_batch_plan(m, op)
    b, h, w, c = _shape4(x)
    if b % (bh * bw):
        m.fail("%s: batch %d is not a multiple of the block shape's %d x %d (TFLite refuses it)."
               % (_what(op), b, bh, bw))
    want = [b // (bh * bw), h * bh - t - btm, w * bw - lft - r, c]
    if want[1] < 1 or want[2] < 1 or want != _shape4(o) or len(o.shape) != len(x.shape):
        m.fail("%s: block shape %s and crops turn %s into %s, but the output tensor is %s."
               % (_what(op), [bh, bw], list(x.shape), want, list(o.shape)))


@register("BATCH_TO_SPACE_ND", family="shape", validate=_batch_to_space_checks)
def lower_batch_to_space_nd(ctx, op):
    """reference_ops::BatchToSpaceND: output (b, y, x) is input batch (sy * bw + sx) * B + b, pixel ((y + top) //
    bh, (x + left) // bw) with sy, sx the remainders; the crops cut the borders, 3-D as 4-D (a byte gather)."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    (bh, bw), ((top, _), (left, _)) = _space_batch_plan(m, op)
    B = _shape4(o_t)[0]
    three = len(x_t.shape) == 3

    def f(x):
        def body(b, y, xx, c):
            yy, xs = y + top, xx + left
            ib = (tirx.floormod(yy, bh) * bw + tirx.floormod(xs, bw)) * B + b
            if three:
                return x[ib, tirx.floordiv(yy, bh), c]
            return x[ib, tirx.floordiv(yy, bh), tirx.floordiv(xs, bw), c]
        if three:
            return te.compute(tuple(o_t.shape), lambda b, y, c: body(b, y, i32(0), c), name="out")
        return te.compute(tuple(o_t.shape), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.operand(op.inputs[0])])
    return 0
