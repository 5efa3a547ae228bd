"""Reductions: MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD, SOFTMAX, ARG_MAX, ARG_MIN."""

import math

import numpy as np

from ...errors import ModelError
from ..quant import QRANGE, clamp_cast, i32, i64, quantize_multiplier, rdbpot, srdhm
from ..registry import (_what, const_input, one_of, options, positive_number, register, same_quantization,
    same_type_per_tensor)
from ..reduction import is_single_tap, reduce_taps
from ..schedules import sched_reduction
from .. import microkernels as mk


def mean_multiplier(in_scale, out_scale, n):
    """(multiplier, shift) of reference_ops::QuantizedMeanOrSum for a mean over `n` elements: QuantizeMultiplier of
    in_scale / out_scale (double of the float32 scales, reduce.cc PrepareMeanOrSum), then 1 / n folded in as
    TFLite does it, in integers: shift = min(floor(log2 n), 32, 31 + shift0), multiplier = (m0 << shift) / n
    (truncating), exponent shift0 - shift.  (QuantizeMultiplier(in / out / n) differs from it by an LSB for some
    n, e.g. 7, and then the outputs differ.)"""
    m0, s0 = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    shift = min(int(n).bit_length() - 1, 32, 31 + s0)
    return int((m0 << shift) // int(n)), s0 - shift


def _mean_axes(m, op):
    """The reduced dimensions (negative ones resolved, duplicates dropped), from the constant axis tensor."""
    x = m.tensors[op.inputs[0]]
    rank = len(x.shape)
    # an empty axis list has no bytes, so the reader cannot tell it from a computed tensor: check it first
    empty = len(op.inputs) > 1 and op.inputs[1] >= 0 and m.tensors[op.inputs[1]].size == 0
    axes = [] if empty else [int(a) for a in const_input(m, op, 1, "axis").ravel()]
    if not axes:
        m.fail("%s: an empty axis list makes TFLite's %s a plain copy; remove the op from the model."
               % (_what(op), op.type))
    if any(not -rank <= a < rank for a in axes):
        m.fail("%s: axes %s are out of range for a %d-D input." % (_what(op), axes, rank))
    return sorted({a % rank for a in axes})


def _mean_checks(m, op):
    same_type_per_tensor(m, op, [op.inputs[0]])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axes = _mean_axes(m, op)
    kept = [1 if d in axes else s for d, s in enumerate(x.shape)]
    want = kept if op.options.get("keep_dims") else [s for d, s in enumerate(x.shape) if d not in axes]
    if list(o.shape) != want:
        m.fail("%s: the %s of %s over axes %s (keep_dims %s) is %s, but the output tensor is %s."
               % (_what(op), {"MEAN": "mean", "SUM": "sum"}.get(op.type, "reduction"), list(x.shape), axes,
                  bool(op.options.get("keep_dims")), want, list(o.shape)))


REDUCER_OPTIONS = options("ReducerOptions", keep_dims=("KeepDims", bool))


@register("MEAN", family="reduce", options=REDUCER_OPTIONS, validate=_mean_checks)
def lower_mean(ctx, op):
    """MEAN over any axes, keep_dims or not: reference_ops::QuantizedMeanOrSum, the path TF 2.21's BUILTIN_REF
    takes for every int8/uint8 mean (H,W of a 4-D tensor included, equal or different scales): int32 sum of x,
    minus zp * n, one MultiplyByQuantizedMultiplier by in_scale / out_scale with 1 / n folded in (see
    mean_multiplier), + out zero point, clamp."""
    return _lower_mean_or_sum(ctx, op, compute_sum=False)


def _sum_checks(m, op):
    _mean_checks(m, op)
    if m.tensors[op.inputs[0]].dtype == "int8":
        # TF 2.21's reduce.cc hands the reference QuantizedMeanOrSum the int8 SUM's data as uint8 (both tensors):
        # tf.lite's reference kernel, the check's yardstick, adds 256 to every negative value and clamps the output
        # to 0..255, so no C can be both right and equal to it
        m.fail("%s: an int8 SUM is not supported: tf.lite's reference kernel (BUILTIN_REF, what `scons check` "
               "compares with) reads int8 SUM tensors as uint8, so its scores are not the sum. Use MEAN (the sum "
               "scaled by 1/n) or a uint8 model." % _what(op))


@register("SUM", family="reduce", options=REDUCER_OPTIONS, validate=_sum_checks)
def lower_sum(ctx, op):
    """uint8 SUM over any axes, keep_dims or not: reference_ops::QuantizedMeanOrSum with compute_sum (reduce.cc's
    EvalSum): int32 sum of x, minus zp * n, MultiplyByQuantizedMultiplier by in_scale / out_scale, + out zero
    point, clamp.  int8 is refused: tf.lite's reference kernel reads it as uint8."""
    return _lower_mean_or_sum(ctx, op, compute_sum=True)


def _lower_mean_or_sum(ctx, op, compute_sum):
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axes = _mean_axes(m, op)
    shape = tuple(x_t.shape)
    rank = len(shape)
    n = int(np.prod([shape[a] for a in axes]))
    if compute_sum:
        mult, shift = quantize_multiplier(float(np.float32(x_t.scale[0])) / float(np.float32(o_t.scale[0])))
    else:
        mult, shift = mean_multiplier(x_t.scale[0], o_t.scale[0], n)
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = QRANGE[o_t.dtype]
    odt = o_t.dtype
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))

    def f(x):
        def total(*i):
            def tap(*r):
                red = dict(zip(axes, r))
                return x(*[red[d] if d in red else i[d] for d in range(rank)]).astype("int32")
            return reduce_taps(te.sum, tap, [shape[a] for a in axes], ["r%d" % a for a in axes])

        acc = te.compute(kept, total, name="acc")

        def epi(*i):
            v = rq(acc(*i) - i32(izp * n), mult, shift)
            return clamp_cast(v + i32(ozp), lo, hi, odt)

        return te.compute(kept, epi, name="out")

    # a scale ratio below 2^-32 quantizes to multiplier 0: every output is the zero point, TVM drops the sum
    # and there is nothing to schedule
    sched = (lambda s: sched_reduction(s, rank)) if mult else None
    y = ctx.emit(op, f, [ctx.values[op.inputs[0]]], sched)
    if tuple(o_t.shape) != kept:
        y = ctx.reshape(y, o_t.shape)
    ctx.values[op.outputs[0]] = y
    return x_t.size



def _minmax_checks(m, op):
    _mean_checks(m, op)
    # reduce.cc EvalType: a quantized REDUCE_MAX / REDUCE_MIN compares raw values; TFLite requires the output
    # quantized like the input
    same_quantization(m, op, op.inputs[0], op.outputs[0])


def _lower_minmax(ctx, op, reducer):
    from tvm import te
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axes = _mean_axes(m, op)
    shape = tuple(x_t.shape)
    rank = len(shape)
    odt = o_t.dtype
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))

    def f(x):
        def total(*i):
            def tap(*r):
                red = dict(zip(axes, r))
                return x(*[red[d] if d in red else i[d] for d in range(rank)]).astype("int32")
            return reduce_taps(reducer, tap, [shape[a] for a in axes], ["r%d" % a for a in axes])

        acc = te.compute(kept, total, name="acc")
        return te.compute(kept, lambda *i: acc(*i).astype(odt), name="out")

    single = is_single_tap([shape[a] for a in axes])
    y = ctx.emit(op, f, [ctx.values[op.inputs[0]]], None if single else (lambda s: sched_reduction(s, rank)))
    if tuple(o_t.shape) != kept:
        y = ctx.reshape(y, o_t.shape)
    ctx.values[op.outputs[0]] = y
    return 0


@register("REDUCE_MAX", family="reduce", options=REDUCER_OPTIONS, validate=_minmax_checks)
def lower_reduce_max(ctx, op):
    """REDUCE_MAX over any axes, keep_dims or not: the largest raw value (reduce.cc's reference ReduceGeneric;
    input and output quantized alike)."""
    from tvm import te
    return _lower_minmax(ctx, op, te.max)


@register("REDUCE_MIN", family="reduce", options=REDUCER_OPTIONS, validate=_minmax_checks)
def lower_reduce_min(ctx, op):
    """REDUCE_MIN over any axes, keep_dims or not: the smallest raw value (as REDUCE_MAX)."""
    from tvm import te
    return _lower_minmax(ctx, op, te.min)


PROD_MAX_RANK = 6      # reduce_prod.h's tvmgen_prod_s8 sees the input as six dimensions


def prod_scaling(in_scale, out_scale, n):
    """(reduced multiplier, total shift) of one requantization step of reference_ops::QuantizedReduceProd:
    QuantizeMultiplier of reduce.cc's GetQuantProdScaling (in_scale / out_scale^(1/n), in double from the float32
    scales), then as the int64 MultiplyByQuantizedMultiplier uses it: the multiplier rounded to 16 bits (0x7FFF
    from 0x7FFF0000 up) and one rounding shift by 15 - shift."""
    scaling = float(np.float32(in_scale)) / math.pow(float(np.float32(out_scale)), 1.0 / int(n))
    mult, shift = quantize_multiplier(scaling)
    rm = (mult + (1 << 15)) >> 16 if mult < 0x7FFF0000 else 0x7FFF
    return rm, 15 - shift


def _prod_axes(m, op):
    """The reduced dimensions; an empty axis list reduces nothing (TFLite still requantizes every element)."""
    empty = len(op.inputs) > 1 and op.inputs[1] >= 0 and m.tensors[op.inputs[1]].size == 0
    return [] if empty else _mean_axes(m, op)


def _prod_checks(m, op):
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if x.dtype == "uint8" or o.dtype == "uint8":
        # reduce.cc EvalProd: a quantized REDUCE_PROD is int8 or int16; tf.lite fails on uint8
        m.fail("%s: a uint8 REDUCE_PROD is not supported: TFLite's kernel computes the quantized product for int8 "
               "(and int16) only and refuses uint8. Quantize the model to int8." % _what(op))
    same_type_per_tensor(m, op, [op.inputs[0]])
    axes = _prod_axes(m, op)
    if len(x.shape) > PROD_MAX_RANK:
        m.fail("%s: the input is %d-D; REDUCE_PROD supports at most %d dimensions."
               % (_what(op), len(x.shape), PROD_MAX_RANK))
    kept = [1 if d in axes else s for d, s in enumerate(x.shape)]
    want = kept if op.options.get("keep_dims") else [s for d, s in enumerate(x.shape) if d not in axes]
    if list(o.shape) != want:
        m.fail("%s: the product of %s over axes %s (keep_dims %s) is %s, but the output tensor is %s."
               % (_what(op), list(x.shape), axes, bool(op.options.get("keep_dims")), want, list(o.shape)))
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if n == 0 or prod_scaling(x.scale[0], o.scale[0], n)[1] < 1:
        m.fail("%s: input scale %g / output scale %g over %d elements needs a requantization shift TFLite's "
               "kernel cannot do; give the output a larger scale." % (_what(op), float(x.scale[0]),
                                                                       float(o.scale[0]), n))


@register("REDUCE_PROD", family="reduce", options=REDUCER_OPTIONS, validate=_prod_checks)
def lower_reduce_prod(ctx, op):
    """int8 REDUCE_PROD over constant axes, keep_dims or not: reference_ops::QuantizedReduceProd, a product
    requantized after every multiplication in the reference's row-major order (not associative, so no TE
    reduction): one call of reduce_prod.h's loop, tvmgen_prod_s8, with the shapes and constants as literals."""
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axes = _prod_axes(m, op)
    shape = tuple(int(s) for s in x_t.shape)
    pad = PROD_MAX_RANK - len(shape)
    dims = (1,) * pad + shape
    mask = sum(1 << (a + pad) for a in axes)
    n = int(np.prod([shape[a] for a in axes])) if axes else 1
    rm, ts = prod_scaling(x_t.scale[0], o_t.scale[0], n)
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))
    y = mk.emit_call(ctx, op, "tvmgen_prod_s8", [ctx.values[op.inputs[0]]], kept, "int8", 0, "int8",
                     list(dims) + [mask, int(x_t.zero_point[0]), int(o_t.zero_point[0]), rm, ts], scratch=False)
    if tuple(o_t.shape) != kept:
        y = ctx.reshape(y, o_t.shape)
    ctx.values[op.outputs[0]] = y
    return x_t.size


@register("SOFTMAX", family="reduce", options=options("SoftmaxOptions", beta=("Beta", float)),
          accepts={"beta": positive_number()})
def lower_softmax(ctx, op):
    """Bit-exact int8/uint8 softmax: TFLite's reference quantized Softmax, i.e. gemmlowp
    fixed point (input diff scaled to Q5.26, exp_on_negative_values, sum in Q12.19,
    reciprocal by Newton-Raphson, output scale 1/256)."""
    from tvm import te, tirx
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    shape = tuple(x_t.shape)
    D = shape[-1]
    nd = len(shape)
    omin = QRANGE[o_t.dtype][0]
    if (float(o_t.scale[0]) != 1.0 / 256 or int(o_t.zero_point[0]) != omin
            or x_t.dtype != o_t.dtype):
        m.fail("SOFTMAX (op #%d) needs output scale 1/256 and zero point %d (TFLite's "
               "quantized softmax); got %g / %d." % (op.index, omin, float(o_t.scale[0]),
                                                      int(o_t.zero_point[0])))
    mult, lshift, diff_min = softmax_params(float(op.options.get("beta", 1.0)),
                                            float(x_t.scale[0]))
    odt = o_t.dtype
    lo, hi = QRANGE[odt]

    quarter = 1 << 24  # 1/4 in Q5.26
    barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))
    rows = shape[:-1]
    names = {"row": [], "sum": [], "out": []}
    INT_MAX = i32(2 ** 31 - 1)

    # Every exp the kernel uses is of d = x - rowmax in [max(diff_min, -255), 0] (smaller d are masked): with
    # microkernels on (the default), one load from a table of the same fixed-point values (softmax_exp_table)
    # instead of the chain below, twice per element.  The index is clamped so masked d read entry 0.
    lut = ctx.const(softmax_exp_table(mult, lshift, diff_min), "softmax_exp") if mk.enabled() else None
    d_lo = max(diff_min, -255)

    # Every intermediate is its own TE stage; the schedule moves each one into the
    # innermost loop of its consumer, so it becomes a one-element local (a scalar).
    # (Nested tirx.Let expressions would be cheaper to write, but TVM's arithmetic
    # simplifier substitutes let-bound values and blows the expression up.)
    def f(x, *tabs):
        rowmax = te.compute(rows, lambda *i: reduce_taps(
            te.max, lambda rd: x(*i, rd).astype("int32"), [D], ["rd"]), name="rowmax")

        def chain(tag):
            def S(name, fn):
                names[tag].append(tag + "_" + name)
                return te.compute(shape, fn, name=tag + "_" + name)
            d = S("d", lambda *i: x(*i).astype("int32") - rowmax(*i[:-1]))
            if tabs:
                return d, S("exp", lambda *i: tabs[0][tirx.max(d(*i), i32(d_lo)) - i32(d_lo)])
            # MultiplyByQuantizedMultiplierGreaterThanOne -> Q5.26
            if lshift < 31:
                sd = S("sd", lambda *i: srdhm(d(*i) * i32(1 << lshift), i32(mult)))
            else:
                # left shift 31 (input scale x beta >= 32): 2^31 is no int32 literal, and TFLite's radius is 0,
                # so only d == 0 is ever used (0); any other d is masked by diff_min = 0 (TFLite: d * INT_MIN)
                sd = S("sd", lambda *i: tirx.Select(d(*i) == i32(0), i32(0), i32(-2 ** 31)))
            # exp_on_negative_values
            mq = S("mq", lambda *i: (sd(*i) & i32(quarter - 1)) - i32(quarter))
            xe = S("xe", lambda *i: mq(*i) * i32(32) + i32(1 << 28))
            x2 = S("x2", lambda *i: srdhm(xe(*i), xe(*i)))
            x3 = S("x3", lambda *i: srdhm(x2(*i), xe(*i)))
            x4q = S("x4q", lambda *i: rdbpot(srdhm(x2(*i), x2(*i)), 2))
            poly = S("poly", lambda *i: rdbpot(
                srdhm(x4q(*i) + x3(*i), i32(715827883)) + x2(*i), 1))
            e = S("e0", lambda *i: i32(1895147668)
                  + srdhm(i32(1895147668), xe(*i) + poly(*i)))
            def barrel_step(e, bit, mul):
                return lambda *i: tirx.Select(
                    ((mq(*i) - sd(*i)) & i32(bit)) != i32(0),
                    srdhm(e(*i), i32(mul)), e(*i))
            for k, (exponent, mul) in enumerate(barrel):
                e = S("b%d" % k, barrel_step(e, 1 << (26 + exponent), mul))
            e_last = e
            ex = S("exp", lambda *i: tirx.Select(sd(*i) == i32(0), INT_MAX, e_last(*i)))
            return d, ex

        ds, exs = chain("sum")
        rowsum = te.compute(rows, lambda *i: reduce_taps(te.sum, lambda rd2: tirx.Select(
            ds(*i, rd2) >= i32(diff_min), rdbpot(exs(*i, rd2), 12), i32(0)), [D], ["rd2"]), name="rowsum")

        def R(name, fn):
            names["row"].append("row_" + name)
            return te.compute(rows, fn, name="row_" + name)
        clz = R("clz", lambda *i: _clz_positive(rowsum(*i)))
        # GetReciprocal: shifted_sum_minus_one, then one_over_one_plus_x_for_x_in_0_1
        hd = R("hd", lambda *i: _half_sum_one(
            ((rowsum(*i).astype("int64") << clz(*i).astype("int64"))
             - i64(1 << 31)).astype("int32")))
        nr = R("nr0", lambda *i: i32(1515870810) + srdhm(hd(*i), i32(-1010580540)))
        def newton(nr):
            return lambda *i: nr(*i) + _sat_mul_pot(srdhm(
                nr(*i), i32(1 << 29) - srdhm(hd(*i), nr(*i))), 2)
        for k in range(3):
            nr = R("nr%d" % (k + 1), newton(nr))
        nr_last = nr
        scale = R("scale", lambda *i: _sat_mul_pot(nr_last(*i), 1))

        do, exo = chain("out")

        def epi(*i):
            # num_bits_over_unit = 12 - clz; shift = num_bits_over_unit + 31 - 8
            # TFLite checks 0 <= exponent <= 31; the explicit clamp also gives TVM's
            # bound analysis a sane range (without it, it wrongly drops the final clamp).
            exponent = tirx.min(tirx.max(i32(12 + 31 - 8) - clz(*i[:-1]), i32(0)),
                                i32(31))
            unsat = rdbpot(srdhm(scale(*i[:-1]), exo(*i)), exponent)
            return tirx.Select(do(*i) >= i32(diff_min),
                               clamp_cast(unsat + i32(omin), lo, hi, odt),
                               tirx.const(omin, odt))

        return te.compute(shape, epi, name="out")

    def sched(sch):
        out = sch.get_sblock("out")
        loops = sch.get_loops(out)
        for n in reversed(names["out"]):
            sch.compute_at(sch.get_sblock(n), loops[nd - 1])
        for n in reversed(names["row"]):
            sch.compute_at(sch.get_sblock(n), loops[nd - 2])
        rs = sch.get_sblock("rowsum")
        sch.compute_at(rs, loops[nd - 2])
        rloops = sch.get_loops(rs)
        for n in reversed(names["sum"]):
            sch.compute_at(sch.get_sblock(n), rloops[-1])
        sch.compute_at(sch.get_sblock("rowmax"), loops[nd - 2])
        for b in ("rowmax", "rowsum") if not is_single_tap([D]) else ():   # one element: no reduction
            bl = sch.get_loops(sch.get_sblock(b))
            sch.decompose_reduction(sch.get_sblock(b), bl[nd - 1])

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]] + ([lut] if lut is not None else []),
                                         sched)
    return x_t.size



def _half_sum_one(v):
    """gemmlowp RoundingHalfSum(v, One) for Q0.31."""
    from tvm import tirx
    s = v.astype("int64") + i64(2 ** 31 - 1)
    return tirx.truncdiv(s + tirx.Select(s >= i64(0), i64(1), i64(-1)),
                         i64(2)).astype("int32")


def softmax_params(beta, input_scale, integer_bits=5):
    """PreprocessSoftmaxScaling + CalculateInputRadius -> (multiplier, left_shift, diff_min)."""
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)),
               (1 << 31) - 1.0)
    if real <= 1.0:
        raise ModelError("softmax input scale %g is too small for TFLite's quantized softmax"
                         % input_scale)
    mult, shift = quantize_multiplier(real)
    radius = math.floor(((1 << integer_bits) - 1) * float(1 << (31 - integer_bits))
                        / float(1 << shift))
    return mult, shift, -int(radius)


def _sat_mul_pot(x, e):
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 (saturating left shift)."""
    from tvm import tirx
    th = (1 << (31 - e)) - 1
    return tirx.Select(x > i32(th), i32(2 ** 31 - 1),
                       tirx.Select(x < i32(-th), i32(-2 ** 31 + 1) - i32(1),
                                   x * i32(1 << e)))


def _clz_positive(v):
    """Count leading zeros of a positive int32 (as uint32)."""
    from tvm import tirx
    n = i32(0)
    for k in range(31, -1, -1):
        n = n + tirx.Select(v < i32(2 ** k) if k < 31 else v >= i32(0), i32(1), i32(0))
    return n


def softmax_exp_table(mult, lshift, diff_min):
    """The int32 exp (Q0.31) that lower_softmax's fixed-point chain gives for each d = x - rowmax in
    [max(diff_min, -255), 0] (index d - max(diff_min, -255)), computed with the same gemmlowp steps on Python ints
    (smaller d are masked by the kernel; TFLite never computes them)."""
    from ..quant import rdbpot_int, srdhm_int, wrap_int
    quarter = 1 << 24
    barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))
    d_lo = max(diff_min, -255)
    out = np.zeros(1 - d_lo, np.int32)
    for d in range(d_lo, 1):
        sd = srdhm_int(wrap_int(d * (1 << lshift)), mult) if lshift < 31 else (0 if d == 0 else -2 ** 31)
        mq = (sd & (quarter - 1)) - quarter
        xe = wrap_int(mq * 32 + (1 << 28))
        x2 = srdhm_int(xe, xe)
        x3 = srdhm_int(x2, xe)
        x4q = rdbpot_int(srdhm_int(x2, x2), 2)
        poly = rdbpot_int(wrap_int(srdhm_int(wrap_int(x4q + x3), 715827883) + x2), 1)
        e = wrap_int(1895147668 + srdhm_int(1895147668, wrap_int(xe + poly)))
        for exponent, m in barrel:
            if wrap_int(mq - sd) & (1 << (26 + exponent)):
                e = srdhm_int(e, m)
        out[d - d_lo] = 2 ** 31 - 1 if sd == 0 else e
    return out


# ---------------------------------------------------------------------------------------------------------------
# ARG_MAX, ARG_MIN


ARG_OUTPUT_TYPES = {2: "int32", 4: "int64"}     # TensorType values ArgMaxOptions.output_type takes


def _arg_axis(m, op):
    x = m.tensors[op.inputs[0]]
    a = const_input(m, op, 1, "axis")
    if a.size != 1 or a.dtype.kind not in "iu":
        m.fail("%s: the axis must be one integer (got %s %s)." % (_what(op), a.dtype, a.ravel().tolist()))
    axis = int(a.ravel()[0])
    if not -len(x.shape) <= axis < len(x.shape):
        m.fail("%s: axis %d is out of range for a %d-D input." % (_what(op), axis, len(x.shape)))
    return axis % len(x.shape)


def _arg_checks(m, op):
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if x.dtype not in ("int8", "uint8") or not x.is_quantized:
        m.fail("%s: input %r is %s; only int8/uint8 inputs are supported." % (_what(op), x.name, x.dtype))
    if o.dtype not in ("int32", "int64") or o.is_quantized:
        m.fail("%s: output %r is %s; TFLite writes int32 or int64 indices." % (_what(op), o.name, o.dtype))
    want_type = op.options.get("output_type")
    if want_type is not None and want_type != o.dtype:
        m.fail("%s: output_type %s but the output tensor is %s." % (_what(op), want_type, o.dtype))
    axis = _arg_axis(m, op)
    if x.shape[axis] > 1 << 23:
        m.fail("%s: %d elements along the axis; at most 2^23 are supported." % (_what(op), x.shape[axis]))
    want = [d for k, d in enumerate(x.shape) if k != axis]
    if want != list(o.shape):
        m.fail("%s: the index over axis %d of %s has shape %s, but the output tensor is %s."
               % (_what(op), axis, list(x.shape), want, list(o.shape)))


def _lower_arg(ctx, op, largest):
    """reference_ops::ArgMinMax: the index of the first largest (smallest) raw value along the axis (raw order is
    the real order: one positive scale).  One max-reduction of the key (value << b) | (2^b - 1 - index), the
    value taken as its distance from the type's minimum (maximum), b the index bits: the largest key is the first
    extreme element; the index is read back from its low bits."""
    from tvm import te
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    axis = _arg_axis(m, op)
    shape = tuple(x_t.shape)
    rank = len(shape)
    n = shape[axis]
    bits = max(1, (n - 1).bit_length())
    low = (1 << bits) - 1
    lo, hi = QRANGE[x_t.dtype]
    kept = tuple(1 if d == axis else s for d, s in enumerate(shape))
    odt = o_t.dtype

    def f(x):
        def total(*i):
            def tap(r):
                v = x(*[r if d == axis else i[d] for d in range(rank)]).astype("int32")
                v = v - i32(lo) if largest else i32(hi) - v
                return v * i32(1 << bits) + (i32(low) - r)
            return reduce_taps(te.max, tap, [n], ["r"])

        acc = te.compute(kept, total, name="acc")
        return te.compute(kept, lambda *i: (i32(low) - (acc(*i) & i32(low))).astype(odt), name="out")

    single = is_single_tap([n])
    y = ctx.emit(op, f, [ctx.values[op.inputs[0]]], None if single else (lambda s: sched_reduction(s, rank)))
    ctx.values[op.outputs[0]] = ctx.reshape(y, o_t.shape)
    return 0


ARG_MAX_OPTIONS = options("ArgMaxOptions", output_type=("OutputType", ARG_OUTPUT_TYPES))
ARG_MIN_OPTIONS = options("ArgMinOptions", output_type=("OutputType", ARG_OUTPUT_TYPES))


@register("ARG_MAX", family="reduce", options=ARG_MAX_OPTIONS, index_outputs=True,
          accepts={"output_type": one_of(("int32", "int64"), bad=(0, 9), label="output_type")},
          validate=_arg_checks)
def lower_arg_max(ctx, op):
    """reference_ops::ArgMinMax with std::greater: the int32/int64 index of the first largest value along the
    constant axis (a classifier head's class; GATHER takes it as run-time indices)."""
    return _lower_arg(ctx, op, True)


@register("ARG_MIN", family="reduce", options=ARG_MIN_OPTIONS, index_outputs=True,
          accepts={"output_type": one_of(("int32", "int64"), bad=(0, 9), label="output_type")},
          validate=_arg_checks)
def lower_arg_min(ctx, op):
    """reference_ops::ArgMinMax with std::less: the int32/int64 index of the first smallest value along the
    constant axis."""
    return _lower_arg(ctx, op, False)
