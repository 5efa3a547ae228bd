"""TFLite's 16x8 mode: int16 activations with int8 weights (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8).

Each kernel here follows TFLite's reference kernel for int16 (reference/integer_ops/*.h, reference_ops), and is
registered with registry.register16 for an op the int8 families registered: an op reading or writing an int16
activation is checked and lowered by its entry here (registry.kernel_for), an op without one is refused.  int16
activations are symmetric (zero point 0), checked as TFLite's Prepare functions do.

- CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: sums of x * w in int64 (the converter's int64 bias) with the int64
  MultiplyByQuantizedMultiplier (multiplier reduced to 16 bits, one rounding shift), or in int32 with the int32
  one when the bias is int32;
- ADD, SUB: the general int16 path (left shift 15 instead of int8's 20); the power-of-two-scale path of old
  converters (pot_scale_int16) is refused;
- MUL, LEAKY_RELU, RELU, RELU6, QUANTIZE (int16 <-> int8 requantization): the int8 arithmetic on int16 values,
  computed per element (a 65536-entry table would not fit a microcontroller);
- LOGISTIC, TANH (TFLite's 256-entry sigmoid table, interpolated), SOFTMAX (softmax.cc's exp and 1 / (1 + x)
  tables), MEAN, RESIZE_BILINEAR (int64 sums), DEQUANTIZE of an int16 model output;
- data movement, pools, MAXIMUM/MINIMUM, REDUCE_MAX/MIN: the int8 lowering, which carries any integer type,
  behind the int8 op's own checks (run on the op with its int16 tensors seen as int8) plus the symmetry check.

Not here because tf.lite's reference has no int16 kernel or a wrong one: HARD_SWISH, TILE ("Type INT16 is not
supported by tile"), SUM (its int16 results are not the sum); such ops are refused by name (registry.kernel_for).
"""

import copy

import numpy as np

from ..quant import (QRANGE, activation_range, clamp_cast, i32, i64, mbqm, per_channel_multipliers,
                     quantize_multiplier, same_padding)
from ..registry import REGISTRY, _what, broadcastable, clamp_activation, register16
from . import activation
from .. import microkernels as mk


# ---------------------------------------------------------------------------------------------------------------
# Checks

def symmetric_int16(m, op, tensors=None):
    """Every int16 activation of `op` is per-tensor quantized with zero point 0 (TFLite's int16 kernels check it:
    TF_LITE_ENSURE_EQ(zero_point, 0)), and the op's activations are all int16."""
    ids = [i for i in (list(op.inputs) + list(op.outputs) if tensors is None else tensors) if i >= 0]
    for i in ids:
        t = m.tensors[i]
        if t.is_const:
            continue
        if t.dtype != "int16":
            m.fail("%s: tensor %r is %s next to int16 activations; TFLite's 16x8 kernel of this op takes int16 "
                   "only." % (_what(op), t.name, t.dtype))
        if not t.is_quantized or len(t.scale) != 1:
            m.fail("%s: int16 tensor %r needs one scale (per-tensor quantization)." % (_what(op), t.name))
        if int(t.zero_point[0]) != 0:
            m.fail("%s: int16 tensor %r has zero point %d; TFLite's 16x8 kernels need zero point 0 (symmetric "
                   "int16). Re-convert the model with the 16x8 converter." % (_what(op), t.name,
                                                                             int(t.zero_point[0])))


class _Int8View:
    """The model as an int8 op check sees it: the int16 activations typed int8 (same shapes and quantization), so
    the int8 entry's structural checks (shapes, axes, equal quantization) run unchanged on an int16 op."""

    def __init__(self, m):
        self._m = m
        self.tensors = []
        for t in m.tensors:
            if t.dtype == "int16":      # constants too (a constant operand of MAXIMUM has the activations' type)
                t = copy.copy(t)
                t.dtype = "int8"
            self.tensors.append(t)

    def __getattr__(self, name):
        return getattr(self._m, name)


def _int8_checks_too(name):
    """The 16x8 check of an op whose int8 lowering carries int16 data: symmetric int16, then the int8 checks."""
    int8_validate = REGISTRY[name].validate

    def validate(m, op):
        symmetric_int16(m, op)
        if int8_validate is not None:
            int8_validate(_Int8View(m), op)
    return validate


def _same_lowering(name):
    int8_lower = REGISTRY[name].lower

    def lower(ctx, op):
        return int8_lower(ctx, op)
    lower.__doc__ = "The int8 lowering of %s on int16 data (no arithmetic but the int8 kernel's)." % name
    return lower


# Ops whose TFLite kernels take int16 by the same code as int8 (templated on the type) and whose lowering here
# carries the type of its input: data movement, max/min, the pools (int32 sums of int16 fit like int8's).
CARRY_INT16 = ("RESHAPE", "SQUEEZE", "PAD", "PADV2", "CONCATENATION", "STRIDED_SLICE", "TRANSPOSE", "PACK",
               "UNPACK", "SPLIT", "SPLIT_V", "GATHER", "RESIZE_NEAREST_NEIGHBOR", "MAX_POOL_2D", "AVERAGE_POOL_2D",
               "MAXIMUM", "MINIMUM", "REDUCE_MAX", "REDUCE_MIN")

for _name in CARRY_INT16:
    register16(_name, validate=_int8_checks_too(_name))(_same_lowering(_name))


def clamp_activation16(m, op):
    """A clamp activation whose int16 range is computable: with an (almost) empty calibrated output range the
    output scale is ~1e-43, 6 / scale is infinite and TFLite's static_cast of it undefined."""
    clamp_activation(m, op)
    o = m.tensors[op.outputs[0]]
    try:
        activation_range(op.options.get("activation", "NONE"), o.scale[0], 0, "int16")
    except OverflowError:
        m.fail("%s: output scale %g is too small for its fused %s (the clamp bound overflows; undefined in TFLite). "
               "The calibration data left this layer's output range empty: recalibrate with data that reaches "
               "it." % (_what(op), float(o.scale[0]), op.options.get("activation")))


def _left_shift_fits(m, op, shift, what):
    """MultiplyByQuantizedMultiplier's int32 left shift x * 2^shift for every int16 x: TFLite wraps around where it
    overflows (undefined in C); int8 ops become a 256-entry table then, an int16 op is refused."""
    if shift > 0 and (1 << 15) << shift > 2 ** 31 - 1:
        m.fail("%s: %s gives a left shift of %d, which overflows TFLite's int32 arithmetic for int16 inputs; "
               "the output scale is too small next to the input's. Recalibrate the model." % (_what(op), what,
                                                                                               shift))


# ---------------------------------------------------------------------------------------------------------------
# CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED

def _weights_bias(m, op):
    w_t = m.tensors[op.inputs[1]]
    if w_t.data is None or w_t.dtype != "int8" or np.any(np.asarray(w_t.zero_point) != 0):
        m.fail("%s: the 16x8 kernel needs constant int8 weights with zero point 0." % _what(op))
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    if b_i >= 0:
        b_t = m.tensors[b_i]
        if b_t.data is None or b_t.dtype not in ("int32", "int64"):
            m.fail("%s: the 16x8 kernel needs a constant int64 (or int32) bias, not %s." % (_what(op), b_t.dtype))
    return w_t, b_i


INT32_BIAS = 2       # tflite.TensorType.INT32 in the options' quantized_bias_type


def _accumulator(m, op, b_i):
    """TFLite's AccumScalar: int32 with an int32 bias, else int64 (the converter's int64 bias).  Without a bias
    tensor the op's options decide (quantized_bias_type of CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV, written
    by the converter's int32 bias option): INT32 picks the int32 kernel, the default the int64 one (measured: a
    bias-less 16x8 TRANSPOSE_CONV rounds like the int64 kernel, or like the int32 one with INT32 there)."""
    if b_i >= 0:
        return "int32" if m.tensors[b_i].dtype == "int32" else "int64"
    return "int32" if op.options.get("quantized_bias_type") == INT32_BIAS else "int64"


def _conv16_checks(m, op):
    clamp_activation16(m, op)
    symmetric_int16(m, op, [op.inputs[0], op.outputs[0]])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if op.type != "FULLY_CONNECTED" and (len(x.shape) != 4 or len(o.shape) != 4):
        m.fail("%s: only 4-D NHWC tensors are supported." % _what(op))
    w_t, b_i = _weights_bias(m, op)
    if op.type == "FULLY_CONNECTED" and op.options.get("weights_format", 0) != 0:
        m.fail("%s needs int8 weights in the default format." % _what(op))
    if _accumulator(m, op, b_i) == "int32":
        if op.type == "DEPTHWISE_CONV_2D":     # depthwise_conv.cc Prepare: TF_LITE_ENSURE bias int64
            m.fail("%s: TFLite's 16x8 depthwise kernel needs an int64 bias, not int32; convert with the default "
                   "bias type." % _what(op))
        if op.type == "FULLY_CONNECTED" and len(w_t.scale) == 1:
            # found by the fuzzer: tf.lite's per-tensor int32-bias 16x8 kernel rounds some outputs one apart from
            # ours (neither its int32 nor its int64 rounding form matches every case); refused until matched
            m.fail("%s: a 16x8 FULLY_CONNECTED with an int32 bias and per-tensor weights is not supported; convert "
                   "with the default (int64) bias type." % _what(op))
        _sums_fit_int32(m, op, w_t, b_i)


def _sums_fit_int32(m, op, w_t, b_i):
    axis = w_t.data.ndim - 1 if op.type == "DEPTHWISE_CONV_2D" else 0
    absw = np.moveaxis(np.abs(w_t.data.astype(np.int64)), axis, 0).reshape(w_t.data.shape[axis], -1).sum(1)
    bias = np.abs(m.tensors[b_i].data.astype(np.int64)).reshape(-1) if b_i >= 0 else 0
    if np.max(absw * 32768 + bias) >= 2 ** 31:
        m.fail("%s: with an int32 bias (or bias type) TFLite's 16x8 kernel sums in int32, which these weights can overflow; "
               "convert with the default int64 bias." % _what(op))


def _reduced_multiplier(mult):
    """The int64 MultiplyByQuantizedMultiplier's 16-bit multiplier: (q + 2^15) >> 16, or 0x7FFF from 0x7FFF0000."""
    mult = np.asarray(mult, np.int64)
    return np.where(mult < 0x7FFF0000, (mult + (1 << 15)) >> 16, 0x7FFF).astype(np.int32)


def _requant16(acc, red, total_shift, mult, shift, srange, accum):
    """MultiplyByQuantizedMultiplier(acc, mult, shift) as TFLite's 16x8 convolutions call it: for an int64 acc,
    (acc * reduced + 2^(total - 1)) >> total with total = 15 - shift (`red`, `total_shift`: per-channel tables);
    for an int32 acc, the int32 form (double rounding).  FULLY_CONNECTED passes red = mult and total = 31 - shift:
    measured against TF 2.21's BUILTIN_REF its 16x8 kernel rounds once with the full 31-bit multiplier (as its int8
    per-channel kernel does, registry rounding "single"), where the convolutions use the 16-bit one."""
    if accum == "int64":
        ts = total_shift.astype("int64")
        return ((acc * red.astype("int64") + (i64(1) << (ts - i64(1)))) >> ts).astype("int32")
    return mbqm(acc, mult, shift, srange)


def _multiplier_tables(ctx, mult, shift, hint, full=False):
    """Per-channel tables for _requant16: the int64 form's multiplier and total shift (reduced multiplier and
    15 - shift; with `full` the multiplier itself and 31 - shift), then mult and shift for the int32 form."""
    if full:
        return [ctx.const(mult.astype(np.int32), hint + "_mult31"),
                ctx.const((31 - shift.astype(np.int64)).astype(np.int32), hint + "_shift31"),
                ctx.const(mult.astype(np.int32), hint + "_mult"), ctx.const(shift.astype(np.int32), hint + "_shift")]
    return [ctx.const(_reduced_multiplier(mult), hint + "_mult16"),
            ctx.const((15 - shift.astype(np.int64)).astype(np.int32), hint + "_shift16"),
            ctx.const(mult.astype(np.int32), hint + "_mult"), ctx.const(shift.astype(np.int32), hint + "_shift")]


def _conv16(ctx, op, depthwise):
    from tvm import te, tirx
    m = ctx.m
    opt = op.options
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    w_t, b_i = _weights_bias(m, op)
    accum = _accumulator(m, op, b_i)
    _, H, W, C = x_t.shape
    _, OH, OW, OC = o_t.shape
    _, KH, KW, _ = w_t.shape
    dm = OC // C if depthwise else 1
    sh, sw = opt["stride_h"], opt["stride_w"]
    dh, dw = opt.get("dilation_h", 1), opt.get("dilation_w", 1)
    pt = same_padding(H, KH, sh, dh, OH) if opt["padding"] == "SAME" else 0
    pl = same_padding(W, KW, sw, dw, OW) if opt["padding"] == "SAME" else 0
    lo, hi = activation_range(opt["activation"], o_t.scale[0], 0, "int16")
    mult, shift = per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], OC)
    srange = (int(shift.min()), int(shift.max()))
    bias = (np.asarray(m.tensors[b_i].data, np.int64).reshape(OC) if b_i >= 0 else np.zeros(OC, np.int64))
    hint = "dw16" if depthwise else "conv16"
    wd = np.asarray(w_t.data, np.int64)
    if (mk.enabled() and not depthwise and accum == "int64" and ctx.values.get(op.inputs[0]) is not None
            and int(np.abs(wd).reshape(OC, -1).sum(1).max(initial=0)) * 32768 < 2 ** 31
            and int(np.abs(bias).max(initial=0)) < 2 ** 62 and int((15 - shift.astype(np.int64)).min()) >= 1):
        # the window copied into K2 int16, the sums in int32 by SMLAD (exact: sum |w| * 32768 < 2^31 per
        # channel), the bias and requantization in int64 (microkernels.h tvmgen_mk_conv16)
        K = KH * KW * C
        K2 = K + (K & 1)
        ts = 15 - shift.astype(np.int64)
        bound = np.abs(wd).reshape(OC, -1).sum(1) * 32768 + np.abs(bias)
        fast = int(bound.max(initial=0) < 2 ** 31 and ts.min(initial=15) >= 15 and ts.max(initial=15) <= 31)
        w16 = np.zeros((OC, K2), np.int16)
        w16[:, :K] = wd.reshape(OC, K)
        margs = [ctx.values[op.inputs[0]], ctx.const(w16, "conv16_w16"), ctx.const(bias, "conv16_b"),
                 ctx.const(_reduced_multiplier(mult), "conv16_mult16"),
                 ctx.const((15 - shift.astype(np.int64)).astype(np.int32), "conv16_shift16")]
        ctx.values[op.outputs[0]] = mk.emit_call(
            ctx, op, "tvmgen_mk_conv16", margs, (1, OH, OW, OC), "int16", K2, "int16",
            [H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, pt, pl, lo, hi, fast])
        return OH * OW * OC * K
    args = [ctx.values[op.inputs[0]], ctx.tensor_const(op.inputs[1], hint + "_w"),
            ctx.const(bias.astype(accum), hint + "_b")] + _multiplier_tables(ctx, mult, shift, hint)

    def f(x, w, b, red, ts, mu, shf):
        rh = te.reduce_axis((0, KH), "rh")
        rw = te.reduce_axis((0, KW), "rw")
        rc = None if depthwise else te.reduce_axis((0, C), "rc")

        def body(n, oh, ow, oc):
            ih = oh * sh + rh * dh - pt
            iw = ow * sw + rw * dw - pl
            if depthwise:
                xv, wv, axes = x[n, ih, iw, oc // dm], w[0, rh, rw, oc], [rh, rw]
            else:
                xv, wv, axes = x[n, ih, iw, rc], w[oc, rh, rw, rc], [rh, rw, rc]
            conds = []
            if pt or sh * (OH - 1) + dh * (KH - 1) - pt >= H:
                conds += [ih >= 0, ih < H]
            if pl or sw * (OW - 1) + dw * (KW - 1) - pl >= W:
                conds += [iw >= 0, iw < W]
            xv = xv.astype(accum)
            if conds:       # a padding tap reads the zero point, 0
                xv = tirx.if_then_else(tirx.all(*conds), xv, tirx.const(0, accum))
            return te.sum(xv * wv.astype(accum), axis=axes)

        shape = (1, OH, OW, OC)
        acc = te.compute(shape, body, name="acc")
        return te.compute(shape, lambda n, oh, ow, oc: clamp_cast(
            _requant16(acc[n, oh, ow, oc] + b[oc], red[oc], ts[oc], mu[oc], shf[oc], srange, accum),
            lo, hi, "int16"), name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return OH * OW * OC * KH * KW * (1 if depthwise else C)


@register16("CONV_2D", validate=_conv16_checks)
def lower_conv_2d_16x8(ctx, op):
    """reference_integer_ops::ConvPerChannel for int16 input: int64 sums of x * w + int64 bias, per-channel
    int64 MultiplyByQuantizedMultiplier, clamp."""
    return _conv16(ctx, op, False)


@register16("DEPTHWISE_CONV_2D", validate=_conv16_checks)
def lower_depthwise_conv_2d_16x8(ctx, op):
    """reference_integer_ops::DepthwiseConvPerChannel for int16 input (any depth multiplier)."""
    return _conv16(ctx, op, True)


@register16("FULLY_CONNECTED", validate=_conv16_checks)
def lower_fully_connected_16x8(ctx, op):
    """reference_integer_ops::FullyConnected (per-tensor: GetQuantizedConvolutionMultipler) or
    FullyConnectedPerChannel for int16 input: int64 sums + int64 bias, int64 MultiplyByQuantizedMultiplier."""
    from tvm import te
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    w_t, b_i = _weights_bias(m, op)
    accum = _accumulator(m, op, b_i)
    U, K = w_t.shape
    B = x_t.size // K
    lo, hi = activation_range(op.options["activation"], o_t.scale[0], 0, "int16")
    if len(w_t.scale) > 1:
        mult, shift = per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], U)
    else:
        prod = float(np.float32(x_t.scale[0]) * np.float32(w_t.scale[0]))
        mu, sh = quantize_multiplier(prod / float(np.float32(o_t.scale[0])))
        mult, shift = np.full(U, mu, np.int32), np.full(U, sh, np.int32)
    srange = (int(shift.min()), int(shift.max()))
    bias = np.asarray(m.tensors[b_i].data, np.int64).reshape(U) if b_i >= 0 else np.zeros(U, np.int64)
    x = ctx.values[op.inputs[0]]
    if tuple(x_t.shape) != (B, K):
        x = ctx.reshape(x, (B, K))
    if accum == "int64":    # the full multiplier times the sum must stay within int64 (in TFLite as well)
        bound = np.abs(w_t.data.astype(np.int64)).sum(1) * 32768 + np.abs(bias)
        if np.max(bound.astype(np.float64) * np.asarray(mult, np.float64)) >= 2.0 ** 62:
            m.fail("%s: the 16x8 sums times the requantization multiplier can overflow int64." % _what(op))
    args = [x, ctx.tensor_const(op.inputs[1], "fc16_w"), ctx.const(bias.astype(accum), "fc16_b")] + \
        _multiplier_tables(ctx, mult, shift, "fc16", full=True)

    def f(x, w, b, red, ts, mu, shf):
        rk = te.reduce_axis((0, K), "rk")
        acc = te.compute((B, U), lambda i, u: te.sum(x[i, rk].astype(accum) * w[u, rk].astype(accum), axis=rk),
                         name="acc")
        return te.compute((B, U), lambda i, u: clamp_cast(
            _requant16(acc[i, u] + b[u], red[u], ts[u], mu[u], shf[u], srange, accum), lo, hi, "int16"),
            name="out")

    y = ctx.emit(op, f, args)
    if tuple(o_t.shape) != (B, U):
        y = ctx.reshape(y, o_t.shape)
    ctx.values[op.outputs[0]] = y
    return B * U * K


# ---------------------------------------------------------------------------------------------------------------
# ADD, SUB, MUL

_ADD16_LEFT_SHIFT = 15


def _add_sub16_multipliers(m, op):
    """add.cc / sub.cc Prepare, general int16 path: as int8's with left_shift 15 (65535 << 15 < 2^31)."""
    sa, sb, so = (np.float32(m.tensors[i].scale[0]) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    twice_max = float(np.float32(2) * max(sa, sb))
    return (quantize_multiplier(float(sa) / twice_max), quantize_multiplier(float(sb) / twice_max),
            quantize_multiplier(twice_max / float(np.float32(1 << _ADD16_LEFT_SHIFT) * so)))


def _add_sub16_checks(m, op):
    symmetric_int16(m, op)
    clamp_activation16(m, op)
    broadcastable(m, op)
    # add.cc / sub.cc Prepare: the power-of-two path only with pot_scale_int16 (no options table: false) and all
    # three scales powers of two; otherwise the general path, even where the option is set
    if op.options.get("pot_scale_int16", False) and all(
            _checked_log2(np.float32(m.tensors[i].scale[0]))[0] for i in (op.inputs[0], op.inputs[1], op.outputs[0])):
        m.fail("%s: the power-of-two-scale int16 path (pot_scale_int16 with power-of-two scales, written by old "
               "converters) is not supported; re-convert the model with a current TensorFlow (general int16 "
               "scaling)." % _what(op))
    if max(shift for _, shift in _add_sub16_multipliers(m, op)) > 0:
        m.fail("%s: the output scale %g is below 2 * max input scale / 2^15, out of range for TFLite's int16 "
               "%s; give the output a larger scale." % (_what(op), float(m.tensors[op.outputs[0]].scale[0]),
                                                        op.type.lower()))


def _add_sub16(ctx, op, subtract):
    from .elementwise import emit_binary
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    (ma, sha), (mb, shb), (mo, sho) = _add_sub16_multipliers(m, op)
    lo, hi = activation_range(op.options.get("activation", "NONE"), o_t.scale[0], 0, "int16")

    def combine(a, b):
        # (x - 0) << 15 fits int32 for every int16 x; each a MultiplyByQuantizedMultiplierSmallerThanOneExp
        sa = mbqm(a.astype("int32") * i32(1 << _ADD16_LEFT_SHIFT), ma, sha)
        sb = mbqm(b.astype("int32") * i32(1 << _ADD16_LEFT_SHIFT), mb, shb)
        return clamp_cast(mbqm(sa - sb if subtract else sa + sb, mo, sho), lo, hi, "int16")

    emit_binary(ctx, op, combine)
    return o_t.size


@register16("ADD", validate=_add_sub16_checks)
def lower_add_16x8(ctx, op):
    """reference_ops::Add for int16 (general scales): inputs shifted left by 15, each scaled by
    in_scale / (2 * max in_scale), summed, scaled by 2 * max in_scale / (2^15 * out_scale), clamp."""
    return _add_sub16(ctx, op, False)


@register16("SUB", validate=_add_sub16_checks)
def lower_sub_16x8(ctx, op):
    """reference_ops::Sub for int16 (general scales): ADD's int16 rescaling, the scaled input2 subtracted."""
    return _add_sub16(ctx, op, True)


def _mul16_multiplier(m, op):
    a_t, b_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    real = np.float32(a_t.scale[0]) * np.float32(b_t.scale[0]) / np.float32(o_t.scale[0])
    return quantize_multiplier(float(real))


def _mul16_checks(m, op):
    symmetric_int16(m, op)
    clamp_activation16(m, op)
    broadcastable(m, op)
    if _mul16_multiplier(m, op)[1] > 0:
        m.fail("%s: in1_scale * in2_scale / out_scale is >= 1, so the rescaled int16 product overflows int32 (in "
               "TFLite as well); give the output a larger scale." % _what(op))


@register16("MUL", validate=_mul16_checks)
def lower_mul_16x8(ctx, op):
    """reference_integer_ops::Mul for int16: x1 * x2 in int32, MultiplyByQuantizedMultiplier by
    in1_scale * in2_scale / out_scale, clamp."""
    from .elementwise import emit_binary
    m = ctx.m
    o_t = m.tensors[op.outputs[0]]
    mult, shift = _mul16_multiplier(m, op)
    lo, hi = activation_range(op.options.get("activation", "NONE"), o_t.scale[0], 0, "int16")

    def combine(a, b):
        return clamp_cast(mbqm(a.astype("int32") * b.astype("int32"), mult, shift), lo, hi, "int16")

    emit_binary(ctx, op, combine)
    return o_t.size


# ---------------------------------------------------------------------------------------------------------------
# Activations and QUANTIZE

def _unary16_checks(m, op):
    symmetric_int16(m, op, [op.inputs[0], op.outputs[0]])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if tuple(x.shape) != tuple(o.shape):
        m.fail("%s: input shape %s differs from output shape %s." % (_what(op), x.shape, o.shape))


def _leaky_relu16_multipliers(m, op):
    """LeakyReluPrepare: both real multipliers are float expressions (float scales and alpha)."""
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    sx, so = np.float32(x_t.scale[0]), np.float32(o_t.scale[0])
    alpha = np.float32(op.options.get("alpha", 0.0))
    return quantize_multiplier(float(sx * alpha / so)), quantize_multiplier(float(sx / so))


def _leaky_relu16_checks(m, op):
    _unary16_checks(m, op)
    (_, s_alpha), (_, s_id) = _leaky_relu16_multipliers(m, op)
    _left_shift_fits(m, op, max(s_alpha, s_id), "the input / output scale")


@register16("LEAKY_RELU", validate=_leaky_relu16_checks)
def lower_leaky_relu_16x8(ctx, op):
    """reference_ops::QuantizeLeakyRelu<int16_t>: x >= 0 ? MultiplyByQuantizedMultiplier(x, identity) :
    MultiplyByQuantizedMultiplier(x, alpha), clamped to int16, per element."""
    from tvm import te, tirx
    (m_alpha, s_alpha), (m_id, s_id) = _leaky_relu16_multipliers(ctx.m, op)

    def f(x):
        def body(*i):
            v = x(*i).astype("int32")
            return clamp_cast(tirx.Select(v >= i32(0), mbqm(v, m_id, s_id), mbqm(v, m_alpha, s_alpha)),
                              *QRANGE["int16"], "int16")
        return te.compute(x.shape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]])
    return 0


def _relu16_checks(m, op):
    _unary16_checks(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    _, shift = quantize_multiplier(float(np.float32(x.scale[0]) / np.float32(o.scale[0])))
    _left_shift_fits(m, op, shift, "the input / output scale")


@register16("RELU", validate=_relu16_checks)
def lower_relu_16x8(ctx, op):
    """QuantizedReluX<int16_t>: MultiplyByQuantizedMultiplier(x, in_scale / out_scale), clamped to [0, 32767]."""
    return activation.lower_relu(ctx, op)


@register16("RELU6", validate=_relu16_checks)
def lower_relu6_16x8(ctx, op):
    """QuantizedReluX<int16_t>: requantized x clamped to [0, round(6 / out_scale)]."""
    return activation.lower_relu6(ctx, op)


def _quantize16_checks(m, op):
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if x.dtype == "float32":        # float -> int16 (a float model input): the QUANTIZE entry's own float path
        if REGISTRY["QUANTIZE"].validate is not None:
            REGISTRY["QUANTIZE"].validate(m, op)
        return
    for t in (x, o):
        if t.dtype not in QRANGE or not t.is_quantized or len(t.scale) != 1:
            m.fail("%s: %s tensor %r; only int8/uint8/int16 -> int16/int8 requantization is supported here."
                   % (_what(op), t.dtype, t.name))
        if t.dtype == "int16" and int(t.zero_point[0]) != 0:
            m.fail("%s: int16 tensor %r has zero point %d; TFLite's int16 QUANTIZE needs 0."
                   % (_what(op), t.name, int(t.zero_point[0])))
    _, shift = quantize_multiplier(float(np.float32(x.scale[0])) / float(np.float32(o.scale[0])))
    if x.dtype == "int16":      # an 8-bit input whose shift overflows becomes its 256-entry table
        _left_shift_fits(m, op, shift, "input scale / output scale")


@register16("QUANTIZE", validate=_quantize16_checks)
def lower_quantize_16x8(ctx, op):
    """reference_ops::Requantize between int16 and int8/int16: MultiplyByQuantizedMultiplier(x - in_zp,
    in_scale / out_scale) + out_zp, clamped to the output type."""
    return REGISTRY["QUANTIZE"].lower(ctx, op)


@register16("DEQUANTIZE")
def lower_dequantize_16x8(ctx, op):
    """DEQUANTIZE of int16 to float32 (the model's float output): the int8 entry's float(scale * (x - zp)), exact
    for int16 as well (a 24-bit scale times a 17-bit integer is exact in double)."""
    return REGISTRY["DEQUANTIZE"].lower(ctx, op)


# ---------------------------------------------------------------------------------------------------------------
# LOGISTIC, TANH: reference_integer_ops::Logistic / Tanh for int16, per element with TFLite's 256-entry table

# TFLite's sigmoid_table_uint16 (sigmoid(i / 24) in unsigned 0.16 fixed point), as data: 44 of its entries are one
# above a rounding of the formula, so only the table itself is bit-exact.
SIGMOID_TABLE_UINT16 = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
)


def _checked_log2(x):
    """CheckedLog2: (is x a power of two within 1e-3 of its log2, the rounded log2)."""
    import math
    lg = math.log(float(x)) * (1.0 / math.log(2.0))
    r = math.floor(lg + 0.5) if lg >= 0 else -math.floor(-lg + 0.5)
    return abs(lg - r) < 1e-3, int(r)


def _lut16_params(x_t):
    """SigmoidPrepare / TanhPrepare for int16: (input multiplier, input left shift) as Eval uses them (the
    power-of-two case's multiplier 3 << shift with shift 0)."""
    pot, lg = _checked_log2(np.float32(x_t.scale[0]))
    shift = 12 + lg             # (15 - kInputIntegerBits) + log2(scale)
    if pot and shift in (0, 1):
        return 3 << shift, 0
    mult, shift = float(np.float32(x_t.scale[0])) * 4096.0 * 3.0, 0
    while mult <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        mult *= 2.0
    return int(mult), shift


def _lut16_checks(m, op):
    _unary16_checks(m, op)
    o = m.tensors[op.outputs[0]]
    if float(np.float32(o.scale[0])) != 1.0 / 32768:
        m.fail("%s: output scale %g; TFLite's int16 %s needs 1/32768." % (_what(op), float(o.scale[0]), op.type))
    mult, _ = _lut16_params(m.tensors[op.inputs[0]])
    if mult * 32768 >= 2 ** 31:
        m.fail("%s: input scale %g is too large for TFLite's int16 %s (its int32 rescaling overflows)."
               % (_what(op), float(m.tensors[op.inputs[0]].scale[0]), op.type))


def _lut16(ctx, op, tanh):
    from tvm import te, tirx
    mult, shift = _lut16_params(ctx.m.tensors[op.inputs[0]])
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    table = ctx.const(np.array(SIGMOID_TABLE_UINT16, np.int32), "sigmoid16")
    frac = 8 if tanh else 9      # the interpolation step: tanh(x) = 2 sigmoid(2x) - 1

    def f(x, t):
        def body(*i):
            v = (x(*i).astype("int32") * i32(mult) + i32(rnd)) >> i32(shift)
            a = tirx.Select(v < i32(0), i32(0) - v, v)
            uh = a >> i32(frac)                         # >= 255 saturates
            ua, ub = t[tirx.min(uh, i32(254))], t[tirx.min(uh, i32(254)) + i32(1)]
            ut = a & i32((1 << frac) - 1)
            if tanh:
                r = tirx.Select(uh >= i32(255), i32(0xFFFF << 8), (ua << i32(8)) + ut * (ub - ua))
                r = tirx.Select(v >= i32(0), r - i32(1 << 23) + i32(1 << 7), i32((1 << 23) + (1 << 7) - 1) - r)
                return (r >> i32(8)).astype("int16")
            r = tirx.Select(uh >= i32(255), i32(0x7FFF << 10), (ua << i32(9)) + ut * (ub - ua))
            r = tirx.Select(v >= i32(0), r + i32(1 << 9), i32((1 << 25) + (1 << 9) - 1) - r)
            return (r >> i32(10)).astype("int16")
        return te.compute(x.shape, body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]], table])
    return 0


@register16("LOGISTIC", validate=_lut16_checks)
def lower_logistic_16x8(ctx, op):
    """reference_integer_ops::Logistic for int16: input rescaled to 1/(3 * 4096) steps, |x| interpolated in
    TFLite's 256-entry sigmoid table (512 steps per entry), mirrored for x < 0."""
    return _lut16(ctx, op, False)


@register16("TANH", validate=_lut16_checks)
def lower_tanh_16x8(ctx, op):
    """reference_integer_ops::Tanh for int16: the sigmoid table at twice the input, 2 sigmoid(2x) - 1."""
    return _lut16(ctx, op, True)


# ---------------------------------------------------------------------------------------------------------------
# SOFTMAX: reference_ops::SoftmaxInt16 with the exp and 1 / (1 + x) tables of softmax.cc's Prepare

def gen_lut_int16(func, input_min, input_max, output_min, output_max):
    """gen_lut<double, int16_t, int16_t>: 512 samples of `func` over [input_min, input_max] at int16 output scale,
    each less half its midpoint interpolation error, and a 513th value for the last slope."""
    from ..quant import round_half_away as rnd
    steps = 512
    step = (input_max - input_min) / steps
    half = step / 2
    inv = 65536.0 / (output_max - output_min)
    lut = []
    for i in range(steps):
        val = func(input_min + i * step)
        mid = func(input_min + i * step + half)
        nxt = func(input_min + (i + 1) * step)
        sample = rnd(val * inv)
        mid_interp = rnd((nxt * inv + rnd(val * inv)) / 2)
        bias = rnd((mid_interp - rnd(mid * inv)) / 2)
        lut.append(int(min(max(sample - bias, -32768.0), 32767.0)))
    lut.append(int(min(max(rnd(func(input_max) * inv), -32768.0), 32767.0)))
    return np.array(lut, np.int32)


def _softmax16_params(m, op):
    """softmax.cc Prepare for int16: input_scale * beta / (10 / 65535) as a QuantizeMultiplier."""
    x_t = m.tensors[op.inputs[0]]
    beta = float(op.options.get("beta", 1.0))
    return quantize_multiplier(float(np.float32(x_t.scale[0])) * beta / (10.0 / 65535.0))


def _softmax16_checks(m, op):
    _unary16_checks(m, op)
    o = m.tensors[op.outputs[0]]
    if float(np.float32(o.scale[0])) != 1.0 / 32768:
        m.fail("%s: output scale %g; TFLite's int16 SOFTMAX needs 1/32768." % (_what(op), float(o.scale[0])))
    _, shift = _softmax16_params(m, op)
    if shift > 0 and 65535 << shift >= 2 ** 31:
        m.fail("%s: input scale x beta is too large for TFLite's int16 SOFTMAX (its int32 rescaling of the "
               "input differences overflows)." % _what(op))


def _lut16_lookup(lut, v):
    """lut_lookup_with_interpolation for an int16 value v (int32 expression in [-32768, 32767])."""
    idx = i32(256) + (v >> i32(7))
    base = lut[idx]
    return base + (((lut[idx + i32(1)] - base) * (v & i32(0x7F)) + i32(64)) >> i32(7))


@register16("SOFTMAX", validate=_softmax16_checks)
def lower_softmax_16x8(ctx, op):
    """reference_ops::SoftmaxInt16: exp of (x - row max), rescaled so that [-10, 0] spans the int16 range, from an
    interpolated 513-entry table; 1 / sum from a second table after normalizing the sum by its leading zeros;
    each exp times the reciprocal with one rounding shift, clamped to [0, 32767]."""
    import math
    from tvm import te, tirx
    from ..reduction import is_single_tap, reduce_taps
    from .reduce import _clz_positive
    m = ctx.m
    x_t = m.tensors[op.inputs[0]]
    shape = tuple(x_t.shape)
    D, nd = shape[-1], len(shape)
    rows = shape[:-1]
    mult, shift = _softmax16_params(m, op)
    exp_lut = ctx.const(gen_lut_int16(math.exp, -10.0, 0.0, -1.0, 1.0), "exp16")
    inv_lut = ctx.const(gen_lut_int16(lambda v: 1.0 / (1.0 + v), 0.0, 1.0, -1.0, 1.0), "inv16")

    def f(x, el, il):
        rowmax = te.compute(rows, lambda *i: reduce_taps(
            te.max, lambda rd: x(*i, rd).astype("int32"), [D], ["rd"]), name="rowmax")

        def exp_of(v, mx):
            scaled = mbqm(v.astype("int32") - mx, mult, shift) + i32(32767)
            return _lut16_lookup(el, tirx.min(tirx.max(scaled, i32(-32768)), i32(32767)))

        rowsum = te.compute(rows, lambda *i: reduce_taps(
            te.sum, lambda rd2: exp_of(x(*i, rd2), rowmax(*i)), [D], ["rd2"]), name="rowsum")
        hr = te.compute(rows, lambda *i: _clz_positive(rowsum(*i)), name="row_hr")

        def recip(*i):
            h = hr(*i)
            shifted = ((rowsum(*i).astype("int64") << (h - i32(1)).astype("int64")) + i64(1 << 13)) >> i64(14)
            sym = shifted.astype("int32") - i32((1 << 15) + (1 << 16))
            return _lut16_lookup(il, tirx.min(tirx.max(sym, i32(-32768)), i32(32767)))
        rc = te.compute(rows, recip, name="row_recip")

        def out(*i):
            r = i[:-1]
            rs = (i32(31) - hr(*r)).astype("int64")
            v = (exp_of(x(*i), rowmax(*r)).astype("int64") * rc(*r).astype("int64")
                 + (i64(1) << (rs - i64(1)))) >> rs
            return clamp_cast(v.astype("int32"), 0, 32767, "int16")
        return te.compute(shape, out, name="out")

    def sched(sch):
        loops = sch.get_loops(sch.get_sblock("out"))
        for n in ("row_recip", "row_hr", "rowsum", "rowmax"):
            sch.compute_at(sch.get_sblock(n), loops[nd - 2])
        for b in ("rowmax", "rowsum") if not is_single_tap([D]) else ():
            bl = sch.get_loops(sch.get_sblock(b))
            sch.decompose_reduction(sch.get_sblock(b), bl[nd - 1])

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]], exp_lut, inv_lut],
                                         sched if nd >= 2 else None)
    return x_t.size


# ---------------------------------------------------------------------------------------------------------------
# MEAN: reference_ops::QuantizedMeanOrSum<int16_t> (the int8 lowering's arithmetic; its sums of int16 values stay
# within int32 for fewer than 2^16 elements).  No int16 SUM: TF 2.21's BUILTIN_REF returns values unrelated to the
# sum for it (as for int8 SUM, see reduce.py), so no C could equal the reference.

def _mean16_checks(m, op):
    from .reduce import _mean_axes, _mean_checks, mean_multiplier
    symmetric_int16(m, op, [op.inputs[0], op.outputs[0]])
    _mean_checks(_Int8View(m), op)
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    n = int(np.prod([x_t.shape[a] for a in _mean_axes(m, op)]))
    _, shift = mean_multiplier(x_t.scale[0], o_t.scale[0], n)
    if (n << 15) << max(shift, 0) >= 2 ** 31:
        m.fail("%s: the int32 sum of %d int16 values%s can overflow (in TFLite as well)."
               % (_what(op), n, " rescaled by 2^%d" % shift if shift > 0 else ""))


@register16("MEAN", validate=_mean16_checks)
def lower_mean_16x8(ctx, op):
    """reference_ops::QuantizedMeanOrSum for int16: int32 sum, one MultiplyByQuantizedMultiplier by
    in_scale / (n * out_scale), clamp to int16."""
    return REGISTRY["MEAN"].lower(ctx, op)



# ---------------------------------------------------------------------------------------------------------------
# RESIZE_BILINEAR: reference_ops::ResizeBilinearInteger<int16_t>, the int8 arithmetic with int64 sums

def _resize_bilinear16_checks(m, op):
    from .movement import _resize_bilinear_checks
    symmetric_int16(m, op, [op.inputs[0], op.outputs[0]])
    _resize_bilinear_checks(_Int8View(m), op)


@register16("RESIZE_BILINEAR", validate=_resize_bilinear16_checks)
def lower_resize_bilinear_16x8(ctx, op):
    """reference_ops::ResizeBilinearInteger for int16: the four neighbours weighted in 1/1024 steps, summed in
    int64 (2^15 x 2^20 leaves int32), rounded half away from zero by 2^20."""
    from tvm import te, tirx
    from .movement import bilinear_taps
    m = ctx.m
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    _, H, W, C = x_t.shape
    _, OH, OW, _ = o_t.shape
    ac = bool(op.options.get("align_corners", False))
    hp = bool(op.options.get("half_pixel_centers", False))
    rows = np.asarray(bilinear_taps(OH, H, ac, hp), np.int32)
    cols = np.asarray(bilinear_taps(OW, W, ac, hp), np.int32)
    args = [ctx.operand(op.inputs[0]), ctx.const(rows, "bilinear16_rows"), ctx.const(cols, "bilinear16_cols")]
    one = i64(1 << 10)

    def f(x, ry, rx):
        def body(b, y, xx, c):
            y0, y1, wy = ry[y, 0], ry[y, 1], ry[y, 2].astype("int64")
            x0, x1, wx = rx[xx, 0], rx[xx, 1], rx[xx, 2].astype("int64")

            def px(yy, xs):
                return x[b, yy, xs, c].astype("int64")
            s = (px(y0, x0) * (one - wy) * (one - wx) + px(y1, x0) * wy * (one - wx)
                 + px(y0, x1) * (one - wy) * wx + px(y1, x1) * wy * wx)
            r = tirx.Select(s > i64(0), i64(1 << 19), i64(-(1 << 19)))
            return tirx.truncdiv(s + r, i64(1 << 20)).astype("int16")
        return te.compute((x_t.shape[0], OH, OW, C), body, name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, args)
    return 0
