"""TRANSPOSE_CONV (Keras Conv2DTranspose, the decoders of audio / segmentation models), int8 and 16x8.

TFLite's reference kernel (reference_integer_ops::TransposeConv) scatters each input pixel times the filter into an
int32 (16x8: int64) scratch image and then requantizes it per channel.  The same sums are gathered here: output
pixel (oy, ox) takes filter tap ky from input row iy = (oy + pad_top - ky) / stride where that divides exactly and
lies in the input (integer sums, so the order does not matter).  Its inputs are the output shape (a constant),
the weights [out channels, KH, KW, in channels], the input and an optional bias.
"""

import numpy as np

from ..quant import activation_range, clamp_cast, i32, per_channel_multipliers, same_padding
from ..registry import (CLAMP_ACCEPTS, FUSED_ACTIVATION, PADDING, PADDING_ACCEPTS, _what, at_least, const_input, options,
                        per_tensor, register, register16)

TRANSPOSE_CONV_OPTIONS = options("TransposeConvOptions", padding=PADDING, stride_h="StrideH", stride_w="StrideW",
                                 activation=FUSED_ACTIVATION, quantized_bias_type="QuantizedBiasType")
TRANSPOSE_CONV_ACCEPTS = {"stride_h": at_least(1), "stride_w": at_least(1), "padding": PADDING_ACCEPTS,
                          "activation": CLAMP_ACCEPTS}


def _structure(m, op):
    """The op's tensors: (input, weights, bias index or -1, output); one error for anything else."""
    if len(op.inputs) < 3 or len(op.outputs) != 1:
        m.fail("%s: expected inputs (output shape, weights, input[, bias]) and one output." % _what(op))
    shape = const_input(m, op, 0, "output shape")
    w, x, o = m.tensors[op.inputs[1]], m.tensors[op.inputs[2]], m.tensors[op.outputs[0]]
    b_i = op.inputs[3] if len(op.inputs) > 3 else -1
    if [int(v) for v in np.asarray(shape).reshape(-1)] != list(o.shape):
        m.fail("%s: the output shape input %s differs from the output tensor's %s (dynamic shapes are not "
               "supported)." % (_what(op), list(np.asarray(shape).reshape(-1)), list(o.shape)))
    if len(x.shape) != 4 or len(o.shape) != 4 or len(w.shape) != 4 or x.shape[0] != 1:
        m.fail("%s: only 4-D NHWC tensors with batch 1 are supported." % _what(op))
    if w.data is None or w.dtype != "int8" or np.any(np.asarray(w.zero_point) != 0):
        m.fail("%s needs constant int8 weights with zero point 0." % _what(op))
    if w.shape[0] != o.shape[3] or w.shape[3] != x.shape[3]:
        m.fail("%s: weights of shape %s do not map %d input to %d output channels."
               % (_what(op), list(w.shape), x.shape[3], o.shape[3]))
    if b_i >= 0 and (m.tensors[b_i].data is None or m.tensors[b_i].dtype not in ("int32", "int64")):
        m.fail("%s: the bias must be a constant int32 (16x8: int64) tensor." % _what(op))
    return x, w, b_i, o


def _geometry(op, x, w, o):
    """(KH, KW, sh, sw, pad_top, pad_left): transpose_conv.cc's padding, ComputePaddingHeightWidth of a forward
    convolution from the output size to the input size."""
    _, KH, KW, _ = w.shape
    _, OH, OW, _ = o.shape
    sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
    same = op.options.get("padding") == "SAME"

    def pad(size, k, s):
        out = (size + s - 1) // s if same else (size - k + s) // s
        return same_padding(size, k, s, 1, out)
    return KH, KW, sh, sw, pad(OH, KH, sh), pad(OW, KW, sw)


def _checks(m, op):
    from .int16 import _accumulator, _sums_fit_int32, clamp_activation16
    clamp_activation16(m, op)       # also for int8: a clamp bound that overflows is refused
    x, w, b_i, o = _structure(m, op)
    if x.dtype != o.dtype or x.dtype not in ("int8", "int16") or not per_tensor(x) or not per_tensor(o):
        m.fail("%s: input and output must be int8 (or int16, 16x8) of one type, per-tensor quantized." % _what(op))
    if x.dtype == "int16":
        for t in (x, o):
            if int(t.zero_point[0]) != 0:
                m.fail("%s: int16 tensor %r has zero point %d; TFLite's 16x8 kernels need 0."
                       % (_what(op), t.name, int(t.zero_point[0])))
        if _accumulator(m, op, b_i) == "int32":     # the int32 scratch image may not overflow, as in TFLite
            _sums_fit_int32(m, op, w, b_i)
    else:
        if b_i >= 0 and m.tensors[b_i].dtype != "int32":
            m.fail("%s: an int8 TRANSPOSE_CONV needs an int32 bias." % _what(op))
        # the int32 sums of (x - zp) * w (plus bias) may not overflow, as in TFLite
        absw = np.abs(w.data.astype(np.int64)).reshape(w.shape[0], -1).sum(1)
        xmax = max(abs(-128 - int(x.zero_point[0])), abs(127 - int(x.zero_point[0])))
        bias = np.abs(m.tensors[b_i].data.astype(np.int64)) if b_i >= 0 else 0
        if np.max(absw * xmax + bias) >= 2 ** 31:
            m.fail("%s: its int32 sums can overflow (in TFLite as well)." % _what(op))
    _, shift = per_channel_multipliers(x.scale[0], w.scale, o.scale[0], o.shape[3])
    if x.dtype == "int8" and shift.max() > 0:
        absw = np.abs(w.data.astype(np.int64)).reshape(w.shape[0], -1).sum(1) * 256
        if np.any((absw << np.maximum(shift.astype(np.int64), 0)) >= 2 ** 31):
            m.fail("%s: the output scale is too small for the input x weight scales: TFLite's int32 requantization "
                   "overflows. Recalibrate the model." % _what(op))


def _lower(ctx, op, sixteen):
    from tvm import te, tirx
    from . import int16 as i16
    m = ctx.m
    x_t, w_t, b_i, o_t = _structure(m, op)
    KH, KW, sh, sw, pt, pl = _geometry(op, x_t, w_t, o_t)
    _, H, W, C = x_t.shape
    _, OH, OW, OC = o_t.shape
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = activation_range(op.options.get("activation", "NONE"), o_t.scale[0], ozp, o_t.dtype)
    mult, shift = per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], OC)
    srange = (int(shift.min()), int(shift.max()))
    accum = i16._accumulator(m, op, b_i) if sixteen else "int32"
    bias = np.asarray(m.tensors[b_i].data, np.int64).reshape(OC) if b_i >= 0 else np.zeros(OC, np.int64)
    odt = o_t.dtype
    tabs = (i16._multiplier_tables(ctx, mult, shift, "tconv") if sixteen else
            [ctx.const(mult.astype(np.int32), "tconv_mult"), ctx.const(shift.astype(np.int32), "tconv_shift")])
    args = [ctx.operand(op.inputs[2]), ctx.tensor_const(op.inputs[1], "tconv_w"),
            ctx.const(bias.astype(accum), "tconv_b")] + tabs
    rq = ctx.requant(op)

    def f(x, w, b, *t):
        rh = te.reduce_axis((0, KH), "rh")
        rw = te.reduce_axis((0, KW), "rw")
        rc = te.reduce_axis((0, C), "rc")

        def body(n, oy, ox, oc):
            ty, tx = oy + i32(pt) - rh, ox + i32(pl) - rw
            iy, ix = tirx.floordiv(ty, i32(sh)), tirx.floordiv(tx, i32(sw))
            conds = [ty >= i32(0), tx >= i32(0), iy < i32(H), ix < i32(W)]
            if sh > 1:
                conds.append(tirx.floormod(ty, i32(sh)) == i32(0))
            if sw > 1:
                conds.append(tirx.floormod(tx, i32(sw)) == i32(0))
            xv = x[n, iy, ix, rc].astype(accum)
            if izp:
                xv = xv - tirx.const(izp, accum)
            prod = xv * w[oc, rh, rw, rc].astype(accum)
            return te.sum(tirx.if_then_else(tirx.all(*conds), prod, tirx.const(0, accum)), axis=[rh, rw, rc])

        shape = (1, OH, OW, OC)
        acc = te.compute(shape, body, name="acc")
        if sixteen:
            red, ts, mu, shf = t
            return te.compute(shape, lambda n, oy, ox, oc: clamp_cast(i16._requant16(
                acc[n, oy, ox, oc] + b[oc], red[oc], ts[oc], mu[oc], shf[oc], srange, accum), lo, hi, odt),
                name="out")
        mu, shf = t
        return te.compute(shape, lambda n, oy, ox, oc: clamp_cast(
            rq(acc[n, oy, ox, oc] + b[oc], mu[oc], shf[oc], srange) + i32(ozp), lo, hi, odt), name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return H * W * C * KH * KW * OC


@register("TRANSPOSE_CONV", family="conv", options=TRANSPOSE_CONV_OPTIONS, accepts=TRANSPOSE_CONV_ACCEPTS,
          validate=_checks, batch_one=True)
def lower_transpose_conv(ctx, op):
    """Transposed convolution (reference_integer_ops::TransposeConv): int32 sums of (x - zp) * w gathered per
    output pixel, + bias, per-channel requantization, activation clamp."""
    return _lower(ctx, op, False)


@register16("TRANSPOSE_CONV", validate=_checks)
def lower_transpose_conv_16x8(ctx, op):
    """reference_integer_ops::TransposeConv for int16 input: int64 sums + int64 bias, the int64
    MultiplyByQuantizedMultiplier of the 16x8 convolutions, clamp."""
    return _lower(ctx, op, True)
