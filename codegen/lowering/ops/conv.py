"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED."""

import numpy as np

from ..quant import (QRANGE, activation_range, clamp_cast, i32, mbqm, per_channel_multipliers, quantize_multiplier,
                    rdbpot_masked, same_padding, srdhm)
from ..registry import (CLAMP_ACCEPTS, FUSED_ACTIVATION, PADDING, PADDING_ACCEPTS, all_of, at_least, clamp_activation,
    options, per_tensor, register)
from ..schedules import factor, sched_conv, sched_depthwise, sched_pointwise, sched_reduction, sched_tiled
from .. import memplan, microkernels as mk


CONV_OPTIONS = options("Conv2DOptions", padding=PADDING, stride_h="StrideH", stride_w="StrideW",
                       dilation_h="DilationHFactor", dilation_w="DilationWFactor", activation=FUSED_ACTIVATION,
                       quantized_bias_type="QuantizedBiasType")
DEPTHWISE_OPTIONS = options("DepthwiseConv2DOptions", padding=PADDING, stride_h="StrideH", stride_w="StrideW",
                            dilation_h="DilationHFactor", dilation_w="DilationWFactor",
                            activation=FUSED_ACTIVATION, depth_multiplier="DepthMultiplier")
FC_OPTIONS = options("FullyConnectedOptions", activation=FUSED_ACTIVATION, keep_num_dims=("KeepNumDims", bool),
                     weights_format="WeightsFormat", quantized_bias_type="QuantizedBiasType")


CONV_ACCEPTS = {"stride_h": at_least(1), "stride_w": at_least(1), "dilation_h": at_least(1),
                "dilation_w": at_least(1), "padding": PADDING_ACCEPTS, "activation": CLAMP_ACCEPTS}


def _requant_fits(m, op):
    """The requantization of the op's largest possible sum fits int32: (sum) * 2^shift < 2^31, where shift is the
    exponent of input scale x weight scale / output scale.  Otherwise TFLite's int32 arithmetic overflows (the left
    shift wraps, or the single-rounding result leaves int32: undefined, tf.lite and TFLite Micro may disagree).
    It happens when the calibration left a layer's output range (almost) empty: output scale ~1e-8."""
    x, w, o = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    if (w.data is None or not x.is_quantized or not w.is_quantized or not o.is_quantized
            or x.dtype not in QRANGE or w.data.ndim < 2):
        return                       # the op's other checks say what is wrong
    qmin, qmax = QRANGE[x.dtype]
    xmax = max(abs(qmin - int(x.zero_point[0])), abs(qmax - int(x.zero_point[0])))
    axis = w.data.ndim - 1 if op.type == "DEPTHWISE_CONV_2D" else 0
    wabs = np.abs(np.asarray(w.data, np.int64) - (np.asarray(w.zero_point, np.int64).reshape(-1)[0]
                                                  if len(w.zero_point) == 1 else 0))
    sums = np.moveaxis(wabs, axis, 0).reshape(w.data.shape[axis], -1).sum(axis=1) * xmax
    if b_i >= 0 and m.tensors[b_i].data is not None:
        sums = sums + np.abs(np.asarray(m.tensors[b_i].data, np.int64)).reshape(-1)[:len(sums)]
    ws = np.asarray(w.scale, np.float64)
    ws = np.broadcast_to(ws, sums.shape) if ws.size == 1 else ws[:len(sums)]
    for c in range(len(sums)):
        _, shift = quantize_multiplier(float(np.float32(x.scale[0])) * float(np.float32(ws[c]))
                                       / float(np.float32(o.scale[0])))
        if shift > 0 and int(sums[c]) << shift >= 2 ** 31:
            m.fail("%s (op #%d): output scale %g is too small for input scale %g x weight scale %g: TFLite's int32 "
                   "requantization of sums up to %d overflows (undefined in TFLite; tf.lite and TFLite Micro may "
                   "disagree). The calibration data left this layer's output range empty: recalibrate with data "
                   "that reaches it." % (op.type, op.index, float(o.scale[0]), float(x.scale[0]), float(ws[c]),
                                         int(sums[c])))


def _conv_checks(m, op):
    clamp_activation(m, op)
    _requant_fits(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(o.shape) != 4:
        m.fail("%s (op #%d): only 4-D NHWC tensors are supported." % (op.type, op.index))
    if x.dtype != o.dtype or not per_tensor(x) or not per_tensor(o):
        m.fail("%s (op #%d): input and output must be int8/uint8 of one type, per-tensor quantized."
               % (op.type, op.index))


def _bias(m, b_i, n):
    """The op's int32 bias as int64 (zeros without one), for folding the input zero point into it."""
    return np.asarray(m.tensors[b_i].data).astype(np.int64).reshape(n) if b_i >= 0 else np.zeros(n, np.int64)


def _conv_common(ctx, op, depthwise):
    from tvm import te, tirx
    m = ctx.m
    rq = ctx.requant(op)
    opt = op.options
    x_t, w_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]]
    o_t = m.tensors[op.outputs[0]]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    if w_t.data is None or w_t.dtype != "int8":
        m.fail("%s (op #%d) needs constant int8 weights." % (op.type, op.index))
    if np.any(w_t.zero_point != 0):
        m.fail("%s (op #%d) has non-zero weight zero points." % (op.type, op.index))
    _, H, W, C = x_t.shape
    _, OH, OW, OC = o_t.shape
    if depthwise:
        _, KH, KW, _ = w_t.shape
        dm = int(opt.get("depth_multiplier", 1)) or 1
        dm = OC // C if C * dm != OC else dm
    else:
        _, KH, KW, _ = w_t.shape
    sh, sw = opt["stride_h"], opt["stride_w"]
    dh, dw = opt.get("dilation_h", 1), opt.get("dilation_w", 1)
    pt = same_padding(H, KH, sh, dh, OH) if opt["padding"] == "SAME" else 0
    pl = same_padding(W, KW, sw, dw, OW) if opt["padding"] == "SAME" else 0
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = activation_range(opt["activation"], o_t.scale[0], ozp, o_t.dtype)
    mult, shift = per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], OC)
    odt = o_t.dtype
    hint = "dw" if depthwise else "conv"
    srange = (int(shift.min()), int(shift.max()))
    # Zero-point term hoisted out of the reduction: sum((x - zp) * w) = sum(x * w) - zp * sum(w)
    # (exact in int32: TFLite's own accumulator holds the same value).  Padded taps read zp
    # instead of 0 so that they cancel as well; zp * sum(w) is folded into the bias constant.
    wd = np.asarray(w_t.data).astype(np.int64)
    sumw = wd[0].reshape(-1, OC).sum(0) if depthwise else wd.reshape(OC, -1).sum(1)
    bias = _bias(m, b_i, OC) - izp * sumw
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        m.fail("%s (op #%d): folded bias overflows int32." % (op.type, op.index))
    if (mk.enabled() and x_t.dtype == "int8" and odt == "int8" and rq is mbqm
            and (not depthwise or (dm == 1 and KH * KW <= mk.MAX_DEPTHWISE_TAPS))):
        return _conv_microkernel(ctx, op, depthwise, (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, pt, pl),
                                 izp, ozp, lo, hi, mult, shift, b_i)
    pointwise = (not depthwise and KH == 1 and KW == 1 and sh == 1 and sw == 1
                 and pt == 0 and pl == 0)
    # 1x1 convolutions over int8 channels in groups of four: one tvmgen_dot4 call (two
    # SMLADs on a DSP core, see kernel_preamble.h) per group of four MACs.
    dot4 = pointwise and C % 4 == 0 and x_t.dtype == "int8"

    args = [ctx.values[op.inputs[0]], ctx.tensor_const(op.inputs[1], hint + "_w"),
            ctx.const(bias.astype(np.int32), hint + "_b"),
            ctx.const(mult, hint + "_mult")]
    if rq is mbqm:
        # per-channel shift as tables: right shift and its rounding term or mask (so the
        # epilogue does no shift clamping and stays in 32-bit arithmetic), left shift only
        # if used
        rsh = np.clip(-shift.astype(np.int64), 0, 31)
        lsh = np.clip(shift.astype(np.int64), 0, 30)
        # |acc + bias| bound per channel (x in the input dtype's range, folded bias)
        xmax = 255 if x_t.dtype == "uint8" else 128
        absw = (np.abs(wd[0]).reshape(-1, OC).sum(0) if depthwise
                else np.abs(wd).reshape(OC, -1).sum(1))
        abound = (xmax * absw + np.abs(bias)) << lsh
        # Fast RoundingDivideByPOT (x + 2^(r-1) + (x >> 31)) >> r when every channel shifts
        # right and that sum provably cannot overflow; else the mask form.
        fast_round = bool(rsh.min() >= 1 and
                          np.all(abound + 1 + (1 << (rsh - 1)) < 2 ** 31 - 1))
        args.append(ctx.const(rsh.astype(np.int8), hint + "_rshift"))
        if fast_round:
            args.append(ctx.const((1 << (rsh - 1)).astype(np.int32), hint + "_rhalf"))
        else:
            args.append(ctx.const(((1 << rsh) - 1).astype(np.int32), hint + "_rmask"))
        if shift.max() > 0:
            args.append(ctx.const(lsh.astype(np.int8), hint + "_lshift"))
    else:
        args.append(ctx.const(shift, hint + "_shift"))

    def f(x, w, b, mu, *tabs):
        rh = te.reduce_axis((0, KH), "rh")
        rw = te.reduce_axis((0, KW), "rw")
        if dot4:
            rc = te.reduce_axis((0, C // 4), "rc")
        elif not depthwise:
            rc = te.reduce_axis((0, C), "rc")

        def body(n, oh, ow, oc):
            if dot4:
                return te.sum(tirx.call_extern(
                    "int32", "tvmgen_dot4",
                    tirx.call_intrin("handle", "tirx.address_of", x[n, oh, ow, rc * 4]),
                    tirx.call_intrin("handle", "tirx.address_of", w[oc, 0, 0, rc * 4])),
                    axis=[rc])
            ih = oh * sh + rh * dh - pt
            iw = ow * sw + rw * dw - pl
            conds = []
            if pt or sh * (OH - 1) + dh * (KH - 1) - pt >= H:
                conds += [ih >= 0, ih < H]
            if pl or sw * (OW - 1) + dw * (KW - 1) - pl >= W:
                conds += [iw >= 0, iw < W]
            if depthwise:
                xv = x[n, ih, iw, oc // dm] if dm != 1 else x[n, ih, iw, oc]
                wv = w[0, rh, rw, oc]
                axes = [rh, rw]
            elif pointwise:
                xv = x[n, oh, ow, rc]
                wv = w[oc, 0, 0, rc]
                axes = [rc]
            else:
                xv = x[n, ih, iw, rc]
                wv = w[oc, rh, rw, rc]
                axes = [rh, rw, rc]
            xv = xv.astype("int32")
            if conds:
                xv = tirx.if_then_else(tirx.all(*conds), xv, i32(izp))
            return te.sum(xv * wv.astype("int32"), axis=axes)

        shape = (1, OH, OW, OC)
        acc = te.compute(shape, body, name="acc")
        if rq is not mbqm:
            return te.compute(shape, lambda n, oh, ow, oc: clamp_cast(
                rq(acc[n, oh, ow, oc] + b[oc], mu[oc], tabs[0][oc], srange) + i32(ozp),
                lo, hi, odt), name="out")
        biased = te.compute(shape, lambda n, oh, ow, oc: acc[n, oh, ow, oc] + b[oc],
                            name="biased")

        rs, rm = tabs[0], tabs[1]

        def high(n, oh, ow, oc):
            v = biased[n, oh, ow, oc]
            if len(tabs) > 2:
                v = v << tabs[2][oc].astype("int32")
            return srdhm(v, mu[oc])
        hm = te.compute(shape, high, name="high")

        def epi(n, oh, ow, oc):
            v = hm[n, oh, ow, oc]
            if fast_round:  # exact: |v| + 2^(r-1) < 2^31 (checked above), r >= 1
                v = (v + rm[oc] + (v >> i32(31))) >> rs[oc].astype("int32")
            else:
                v = rdbpot_masked(v, rs[oc].astype("int32"), rm[oc])
            # SSAT/USAT for a full-range clamp (gcc turns the min/max pair into branches)
            return tirx.call_extern("int32", "tvmgen_clamp", v + i32(ozp), i32(lo),
                                    i32(hi)).astype(odt)

        return te.compute(shape, epi, name="out")

    if pointwise:
        sched = lambda s: sched_pointwise(s, OW, OC, C // 4 if dot4 else C,  # noqa: E731
                                           (1,) if dot4 else (4, 2),
                                           (2,) if dot4 else (4, 2))
    elif depthwise:
        sched = lambda s: sched_depthwise(s, OC)  # noqa: E731
    else:
        sched = lambda s: sched_conv(s, OW, OC, KH * KW * C)  # noqa: E731
    ctx.values[op.outputs[0]] = ctx.emit(op, f, args, sched)
    return OH * OW * OC * KH * KW * (1 if depthwise else C)



def _conv_microkernel(ctx, op, depthwise, dims, izp, ozp, lo, hi, mult, shift, b_i):
    """CONV_2D / DEPTHWISE_CONV_2D (depth multiplier 1) as a call of tvmgen_mk_conv / tvmgen_mk_dwconv."""
    m = ctx.m
    H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, pt, pl = dims
    w = np.asarray(m.tensors[op.inputs[1]].data)
    bias = _bias(m, b_i, OC)
    xmax = max(abs(-128 - izp), abs(127 - izp))          # |x - zp| for int8 x
    wabs = np.abs(w.astype(np.int64))
    if depthwise:
        absw = wabs[0].reshape(-1, OC).sum(0)
        # the zero point folded into the bias: padding taps read a row of zp bytes (see microkernels.h)
        bias_k = bias - izp * w.astype(np.int64)[0].reshape(-1, OC).sum(0)
        if np.abs(bias_k).max(initial=0) >= 2 ** 31:
            m.fail("%s (op #%d): folded bias overflows int32." % (op.type, op.index))
    else:
        absw = wabs.reshape(OC, -1).sum(1)
        bias_k = bias
    rq, lsh, flags = mk.requant_double(bias_k, mult, shift, xmax * absw + np.abs(bias), absw == 0,
                                       (ozp, lo, hi))
    dw3 = depthwise and mk.dw3_fits(KH, KW, sh, sw, dh, dw, OC // C)
    if depthwise:
        rows = (OC + 3) // 4 * 4
        # with SRDHM as one SMMULR (which needs 2 * sum), store 2 w and 2 bias: the sum comes out doubled
        rq, flags = mk.doubled_sums(rq, flags, bool(flags & mk.RQ_SMMUL))
        if dw3:     # 3x3 through a ring of channel-major rows (microkernels.h, tvmgen_mk_dw3)
            rows = OC
            wk = mk.dw3_weights(w) * (2 if flags & mk.RQ_DOUBLED else 1)     # with rq into dw3_params below
            scratch, sdt, cfunc = mk.dw3_scratch(W, C, OW, sh, pl), "int8", "tvmgen_mk_dw3"
        else:
            wk = ctx.const(mk.depthwise_weights(w) * (2 if flags & mk.RQ_DOUBLED else 1), "dw_w16")
            scratch, sdt, cfunc = C, "int8", "tvmgen_mk_dwconv"
    else:
        rows = (OC + 1) // 2 * 2
        k4 = (KH * KW * C + 3) // 4 * 4
        # with SRDHM as one SMMULR (which needs 2 * sum) the im2col can store 2 (x - zp) so that the sums come
        # out doubled: one SADD16 per two inputs of a pixel against one shift per output, so only when the
        # layer has more outputs per pixel than input pairs
        rq, flags = mk.doubled_sums(rq, flags, bool(flags & mk.RQ_SMMUL) and k4 < 2 * OC)
        xeff = xmax * (2 if flags & mk.RQ_DOUBLED else 1)
        packed = mk.conv_pair_weights(w, xeff) if k4 >= mk.CONV_PAIR_MIN_K else None
        if packed is not None:
            wk, wname = packed, "conv_w2"
            flags |= mk.CONV_PAIR
        else:
            wk, wname = mk.conv_weights(w), "conv_w"
        k4 = (KH * KW * C + 3) // 4 * 4
        scratch, sdt, cfunc = 2 * k4, "int16", "tvmgen_mk_conv"
    rq = mk.pad_rows(rq, rows)
    if depthwise and not dw3:   # by field within each group of four channels (microkernels.h, tvmgen_mk_dw_pixel)
        rq = np.ascontiguousarray(rq.reshape(rows // 4, 4, 4).transpose(0, 2, 1)).reshape(rows, 4)
    lsh_k = ctx.const(mk.pad_rows(lsh, rows) if flags & mk.RQ_LSHIFT else np.zeros(1, np.int8), "lshift")
    if dw3:
        args = [ctx.values[op.inputs[0]], ctx.const(mk.dw3_params(wk, rq), "dw3_prm"), lsh_k]
        scalars = [H, W, C, OH, OW, sh, pt, pl, mk.dw3_width(W, OW, sh, pl), izp, ozp, lo, hi, flags]
    elif not depthwise:         # weights and requantization in one stream, pair by pair (microkernels.h)
        args = [ctx.values[op.inputs[0]], ctx.const(mk.conv_stream(wk, rq), wname), lsh_k]
        scalars = [H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, pt, pl, izp, ozp, lo, hi, flags]
    else:
        args = [ctx.values[op.inputs[0]], wk, ctx.const(rq, "rq"), lsh_k]
        scalars = [H, W, C, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl, izp, ozp, lo, hi, flags]
    y = mk.emit_call(ctx, op, cfunc, args, (1, OH, OW, OC), "int8", scratch, sdt, scalars)
    if dw3:
        delta = mk.dw3_inplace_delta(H, W, C, OH, OW, sh, pt)
        if _feeds_expansion(m, op):
            # any smaller delta is safe too: the old kernel's keeps the placement the greedy planner found for it
            # when an expansion reads this output (VWW: with the larger one its first depthwise goes in place,
            # right where the 1x1 expansion after it needs room to go in place itself: 55,680 workspace bytes
            # against 38,528; KWS, whose depthwise layers feed 1x1 convolutions of equal size, gains 4.7 KB)
            delta = min(delta, memplan.inplace_delta_depthwise(H, W, C, OH, OW, sh, sw, pt, pl))
    else:
        delta = (memplan.inplace_delta_depthwise(H, W, C, OH, OW, sh, sw, pt, pl) if depthwise else
                 memplan.inplace_delta_conv(H, W, C, OH, OW, OC, sh, sw, pt, pl))
    if delta is not None and dh == 1 and dw == 1:
        ctx.inplace[ctx.kname(op)] = [(0, delta)]
    ctx.values[op.outputs[0]] = y
    return OH * OW * OC * KH * KW * (1 if depthwise else C)


def _feeds_expansion(m, op):
    """Some reader of the op's output writes more bytes than it reads (a 1x1 expansion of a MobileNet block)."""
    out = op.outputs[0]
    for r in m.ops:
        if out in r.inputs and r.outputs:
            t_in, t_out = m.tensors[out], m.tensors[r.outputs[0]]
            if int(np.prod(t_out.shape)) > int(np.prod(t_in.shape)):
                return True
    return False


@register("CONV_2D", family="conv", options=CONV_OPTIONS, accepts=CONV_ACCEPTS, validate=_conv_checks,
          batch_one=True)
def lower_conv_2d(ctx, op):
    """2-D convolution: int32 sums of (x - zp) * w + bias, per-channel requantization."""
    return _conv_common(ctx, op, False)



@register("DEPTHWISE_CONV_2D", family="conv", options=DEPTHWISE_OPTIONS, accepts=CONV_ACCEPTS,
          validate=_conv_checks, batch_one=True)
def lower_depthwise_conv_2d(ctx, op):
    """Depthwise convolution (any depth multiplier), per-channel requantization."""
    return _conv_common(ctx, op, True)



@register("FULLY_CONNECTED", family="conv", options=FC_OPTIONS, accepts={"activation": CLAMP_ACCEPTS},
          validate=all_of(clamp_activation, _requant_fits), rounding="single")
def lower_fully_connected(ctx, op):
    """Fully connected layer, per-tensor or per-channel weights (single-rounding requantization)."""
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    relax = ctx.relax
    x_t, w_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]]
    o_t = m.tensors[op.outputs[0]]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    if w_t.data is None or w_t.dtype != "int8" or op.options.get("weights_format", 0) != 0:
        m.fail("FULLY_CONNECTED (op #%d) needs constant int8 weights in the default "
               "format." % op.index)
    U, K = w_t.shape
    B = x_t.size // K
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    wzp = int(w_t.zero_point[0]) if len(w_t.zero_point) else 0
    lo, hi = activation_range(op.options["activation"], o_t.scale[0], ozp, o_t.dtype)
    if len(w_t.scale) > 1:  # per-channel
        mult, shift = per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], U)
    else:  # GetQuantizedConvolutionMultipler: float32 product, then double
        prod = float(np.float32(x_t.scale[0]) * np.float32(w_t.scale[0]))
        mu, sh = quantize_multiplier(prod / float(np.float32(o_t.scale[0])))
        mult, shift = np.full(U, mu, np.int32), np.full(U, sh, np.int32)
    odt = o_t.dtype
    srange = (int(shift.min()), int(shift.max()))
    rq_single = mk.requant_single(_bias(m, b_i, U), mult, shift)
    if mk.enabled() and x_t.dtype == "int8" and odt == "int8" and wzp == 0 and rq_single is not None:
        wd = np.asarray(w_t.data, np.int8)
        packed = mk.fc_pair_weights(wd)
        folded = _bias(m, b_i, U) - izp * wd.astype(np.int64).sum(1)
        x = ctx.values[op.inputs[0]]
        if packed is not None and np.abs(folded).max(initial=0) < 2 ** 31:
            # two outputs per SMLAD, no scratch (microkernels.h, tvmgen_mk_fc_pair)
            rq_p = mk.requant_single(folded, mult, shift)
            flags = mk.single_flags(rq_p)
            table = mk.per_tensor_table(rq_p, (U + 3) // 4 * 4)
            if table is not None:
                # one multiplier for every output (per-tensor weights): one row of it, then the biases
                rq_p, flags = table, flags | mk.FC_PER_TENSOR
            else:
                rq_p = mk.pad_rows(rq_p, (U + 3) // 4 * 4)
            args = [x, ctx.const(packed, "fc_w2"), ctx.const(rq_p, "fc_rq")]
            y = mk.emit_call(ctx, op, "tvmgen_mk_fc_pair", args, (B, U), "int8", 0, "int8",
                             [B, K, U, ozp, lo, hi, flags], scratch=False)
        elif np.abs(folded).max(initial=0) < 2 ** 31:
            # the row read in place, the zero point in the bias: no K4 int16 copy of it (TVMGEN_FC_DIRECT)
            rq_d = mk.requant_single(folded, mult, shift)
            args = [x, ctx.const(mk.fc_weights(wd), "fc_w"), ctx.const(mk.pad_rows(rq_d, (U + 3) // 4 * 4), "fc_rq")]
            y = mk.emit_call(ctx, op, "tvmgen_mk_fc", args, (B, U), "int8", 1, "int16",
                             [B, K, U, izp, ozp, lo, hi, mk.single_flags(rq_d) | mk.FC_DIRECT])
        else:
            args = [x, ctx.const(mk.fc_weights(wd), "fc_w"),
                    ctx.const(mk.pad_rows(rq_single, (U + 3) // 4 * 4), "fc_rq")]
            y = mk.emit_call(ctx, op, "tvmgen_mk_fc", args, (B, U), "int8", (K + 3) // 4 * 4, "int16",
                             [B, K, U, izp, ozp, lo, hi, mk.single_flags(rq_single)])
        if tuple(o_t.shape) != (B, U):
            y = ctx.bb.emit(relax.op.reshape(y, tuple(o_t.shape)))
        ctx.values[op.outputs[0]] = y
        return B * U * K
    # int8 inputs in groups of four: tvmgen_dot4 (two SMLADs on a DSP core) per group, a tile of 4 outputs
    # sharing each input load; the input zero point is folded into the bias as for convolutions
    # (sum((x - zp) * w) = sum(x * w) - zp * sum(w), exact in int32 like TFLite's accumulator).
    dot4 = K % 4 == 0 and x_t.dtype == "int8" and wzp == 0
    wd = np.asarray(w_t.data).astype(np.int64)
    bias = _bias(m, b_i, U) - (izp * wd.sum(1) if dot4 else 0)
    if np.abs(bias).max(initial=0) >= 2 ** 31:   # the folded bias must stay an int32: keep the zero point
        dot4, bias = False, _bias(m, b_i, U)
    x = ctx.values[op.inputs[0]]
    if tuple(x_t.shape) != (B, K):
        x = ctx.bb.emit(relax.op.reshape(x, (B, K)))
    args = [x, ctx.tensor_const(op.inputs[1], "fc_w"), ctx.const(bias.astype(np.int32), "fc_b"),
            ctx.const(mult, "fc_mult"), ctx.const(shift, "fc_shift")]
    out_shape = tuple(o_t.shape)

    def f(x, w, b, mu, shf):
        from tvm import tirx
        if dot4:
            rk = te.reduce_axis((0, K // 4), "rk")
            acc = te.compute((B, U), lambda i, u: te.sum(tirx.call_extern(
                "int32", "tvmgen_dot4",
                tirx.call_intrin("handle", "tirx.address_of", x[i, rk * 4]),
                tirx.call_intrin("handle", "tirx.address_of", w[u, rk * 4])), axis=rk), name="acc")
        else:
            rk = te.reduce_axis((0, K), "rk")
            acc = te.compute(
                (B, U),
                lambda i, u: te.sum((x[i, rk].astype("int32") - i32(izp))
                                    * (w[u, rk].astype("int32") - i32(wzp)), axis=rk),
                name="acc")

        def epi(i, u):
            return clamp_cast(rq(acc[i, u] + b[u], mu[u], shf[u], srange) + i32(ozp), lo, hi, odt)

        return te.compute((B, U), epi, name="out")

    ut = factor(U, (4, 2))
    if dot4 and ut > 1:
        # (unrolling the reduction by 2 as well measured slower on the M4: register pressure)
        sched = lambda s: sched_tiled(s, [(1, ut)], set(), {}, n_spatial=2)  # noqa: E731
    else:
        sched = lambda s: sched_reduction(s, 2)  # noqa: E731
    y = ctx.emit(op, f, args, sched)
    if out_shape != (B, U):
        y = ctx.bb.emit(relax.op.reshape(y, out_shape))
    ctx.values[op.outputs[0]] = y
    return B * U * K

