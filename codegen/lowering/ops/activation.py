"""Activations: RELU, RELU6, and the table-driven LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, ABS."""

import ctypes
import ctypes.util
import math

import numpy as np

from ..quant import (QRANGE, activation_range, clamp_cast, i32, left_shift_overflows, mbqm_int, quantize_multiplier,
                     rdbpot_int, round_half_away, srdhm_int, wrap_int)
from ..registry import _what, lookup, options, register, same_type_per_tensor


def _relu_x(ctx, op, act):
    """Standalone RELU / RELU6 (TFLite QuantizedReluX + reference ReluX): out_zp +
    MultiplyByQuantizedMultiplier(x - in_zp, in_scale / out_scale), clamped to
    [max(qmin, out_zp), qmax] (RELU) or [.., min(qmax, out_zp + round(6 / out_scale))]."""
    from tvm import te
    m = ctx.m
    rq = ctx.requant(op)
    x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    # ReluPrepare divides the float scales in float: a double quotient differs in the multiplier's low bits
    # and rounds differently now and then (e.g. scales 0.0059465617 -> 0.01955758, input -13)
    mult, shift = quantize_multiplier(float(np.float32(x_t.scale[0]) / np.float32(o_t.scale[0])))
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    lo, hi = activation_range(act, o_t.scale[0], ozp, o_t.dtype)
    odt = o_t.dtype
    if left_shift_overflows(QRANGE[x_t.dtype], izp, shift):
        # TFLite's int32 x * 2^shift wraps around here (the output scale is tiny next to the input's); C code
        # would overflow, so the op is its table, computed with TFLite's wrap-around
        rounding = lookup(op.type).rounding
        return _lut_op(ctx, op, lambda v: min(max(mbqm_int(v - izp, mult, shift, rounding) + ozp, lo), hi))

    def f(x):
        return te.compute(x.shape, lambda *i: clamp_cast(
            rq(x(*i).astype("int32") - i32(izp), mult, shift) + i32(ozp), lo, hi, odt),
            name="out")

    ctx.values[op.outputs[0]] = ctx.emit(op, f, [ctx.values[op.inputs[0]]])
    ctx.elementwise_inplace(op, [(0, op.inputs[0])])
    return 0



@register("RELU", family="activation", validate=same_type_per_tensor)
def lower_relu(ctx, op):
    """max(x, 0) with requantization to the output scale."""
    return _relu_x(ctx, op, "RELU")



@register("RELU6", family="activation", validate=same_type_per_tensor)
def lower_relu6(ctx, op):
    """min(max(x, 0), 6) with requantization to the output scale."""
    return _relu_x(ctx, op, "RELU6")


# ---------------------------------------------------------------------------------------------------------------
# Unary ops as a lookup table.  An int8/uint8 -> int8/uint8 elementwise function has 256 possible inputs, so its
# TFLite kernel is evaluated here, at codegen time, for every one of them; the C kernel is one table load per
# element, bit-exact by construction and the same speed whatever the function costs.

def _scalars(t):
    return np.float32(t.scale[0]), int(t.zero_point[0])


def _lut_op(ctx, op, value):
    """out[i] = lut[x[i] - qmin], lut[k] = value(qmin + k): `value` maps a raw input (Python int) to the raw
    output TFLite's kernel produces for it."""
    ctx.lookup_table(op, value)
    return 0


def _unary_checks(m, op):
    """One int8/uint8 input and output of the same type and shape (the table is indexed by the raw input)."""
    same_type_per_tensor(m, op, op.inputs[:1])
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if tuple(x.shape) != tuple(o.shape):
        m.fail("%s: input shape %s differs from output shape %s." % (_what(op), x.shape, o.shape))


# TFLite's int8/uint8 LOGISTIC and TANH reference path (activations.cc SigmoidPrepare / TanhPrepare with
# kReference) fills a table in float with the C library's expf / tanhf, so the same functions are called here
# (TFLite's table depends on the libm it runs with; numpy's float32 exp need not round identically).
_LIBM = None


def _libm_float(name, fallback):
    global _LIBM
    if _LIBM is None:
        path = ctypes.util.find_library("m")
        _LIBM = ctypes.CDLL(path) if path else False
    if not _LIBM:
        return lambda v: np.float32(fallback(np.float32(v)))
    fn = getattr(_LIBM, name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda v: np.float32(fn(float(v)))


def _float_lut_value(x_t, o_t, transform):
    """LUTPopulateInt8 (kernels/internal/common.h): dequantize in float, transform, round half away from zero at
    1 / out_scale (float), add the zero point in float, truncate to int32 and clamp."""
    in_scale, izp = _scalars(x_t)
    out_scale, ozp = _scalars(o_t)
    inverse_scale = np.float32(1) / out_scale
    lo, hi = QRANGE[o_t.dtype]

    def value(v):
        dequantized = in_scale * np.float32(v - izp)
        rescaled = np.float32(round_half_away(float(np.float32(transform(dequantized) * inverse_scale))))
        r = float(rescaled + np.float32(ozp))
        # static_cast<int32_t> of an out-of-range float gives INT32_MIN on x86 (cvttss2si)
        q = int(r) if math.isfinite(r) and -2.0 ** 31 <= r < 2.0 ** 31 else -(1 << 31)
        return max(lo, min(hi, q))
    return value


def _logistic_checks(m, op):
    _unary_checks(m, op)
    o = m.tensors[op.outputs[0]]
    if float(np.float32(o.scale[0])) != 1.0 / 256:
        m.fail("%s: output scale %g; TFLite's int8/uint8 LOGISTIC needs 1/256 (the converter's default)."
               % (_what(op), float(o.scale[0])))


def logistic_value(x_t, o_t):
    """raw input -> raw output of TFLite's int8/uint8 LOGISTIC table: 1.0f / (1.0f + expf(-x))."""
    expf = _libm_float("expf", np.exp)
    one = np.float32(1)
    return _float_lut_value(x_t, o_t, lambda v: one / (one + expf(-v)))


def tanh_value(x_t, o_t):
    """raw input -> raw output of TFLite's int8/uint8 TANH table: tanhf(x)."""
    return _float_lut_value(x_t, o_t, _libm_float("tanhf", np.tanh))


@register("LOGISTIC", family="activation", validate=_logistic_checks)
def lower_logistic(ctx, op):
    """sigmoid(x) = 1 / (1 + exp(-x)) as a 256-entry table built like TFLite's (float, libm expf)."""
    return _lut_op(ctx, op, logistic_value(ctx.m.tensors[op.inputs[0]], ctx.m.tensors[op.outputs[0]]))


@register("TANH", family="activation", validate=_unary_checks)
def lower_tanh(ctx, op):
    """tanh(x) as a 256-entry table built like TFLite's (float, libm tanhf)."""
    return _lut_op(ctx, op, tanh_value(ctx.m.tensors[op.inputs[0]], ctx.m.tensors[op.outputs[0]]))


def _int16_multiplier(real):
    """QuantizeMultiplier(float) then DownScaleInt32ToInt16Multiplier (activations.cc HardSwishPrepare):
    (int16 multiplier, exponent)."""
    m32, exponent = quantize_multiplier(float(real))
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1, exponent
    return (m32 + (1 << 15)) >> 16, exponent


def _hard_swish_params(x_t, o_t):
    """HardSwishPrepare's multipliers, computed in float32 as TFLite does."""
    in_scale, _ = _scalars(x_t)
    out_scale, _ = _scalars(o_t)
    hires_input_scale = np.float32(1.0 / 128.0) * in_scale
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_mult, out_exp = _int16_multiplier(hires_input_scale / out_scale)
    reluish_mult, reluish_exp = _int16_multiplier(hires_input_scale / reluish_scale)
    return out_mult, out_exp, reluish_mult, reluish_exp


def _hard_swish_checks(m, op):
    _unary_checks(m, op)
    x, o = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    if _hard_swish_params(x, o)[1] > 0:
        m.fail("%s: input scale / (128 * output scale) = %g is >= 1, which TFLite's quantized HARD_SWISH "
               "rejects; requantize the model so the output scale is at least input scale / 128."
               % (_what(op), float(x.scale[0]) / 128 / float(o.scale[0])))


def _saturating_left_shift16(v, amount):
    return max(-(1 << 15), min((1 << 15) - 1, v * (1 << amount)))


def hard_swish_value(x_t, o_t):
    """raw input -> raw output of reference_ops::HardSwish (16-bit fixed point), step by step; every
    intermediate is an int16_t there."""
    izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
    out_mult, out_exp, reluish_mult, reluish_exp = _hard_swish_params(x_t, o_t)
    lo, hi = QRANGE[o_t.dtype]

    def value(v):
        hires = wrap_int((v - izp) * 128, 16)
        preshift_out = srdhm_int(hires, out_mult, 16)
        reluish = hires
        if reluish_exp > 0:
            reluish = _saturating_left_shift16(reluish, reluish_exp - 1)
        reluish = srdhm_int(reluish, reluish_mult, 16)
        if reluish_exp > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if reluish_exp < 0:
            reluish = rdbpot_int(reluish, -reluish_exp, 16)
        reluish = wrap_int((reluish + (1 << 15)) >> 1, 16)          # [-1, 1] -> [0, 1]
        # SaturatingDoublingHighMul: like SRDHM but truncating toward zero
        if reluish == preshift_out == -(1 << 15):
            pre = (1 << 15) - 1
        else:
            ab = reluish * preshift_out
            pre = wrap_int(abs(ab) // (1 << 15) * (1 if ab >= 0 else -1), 16)
        out = wrap_int(rdbpot_int(pre, -out_exp, 16) + ozp, 16)
        return max(lo, min(hi, out))
    return value


@register("HARD_SWISH", family="activation", validate=_hard_swish_checks)
def lower_hard_swish(ctx, op):
    """x * relu6(x + 3) / 6 as a 256-entry table of reference_ops::HardSwish."""
    m = ctx.m
    return _lut_op(ctx, op, hard_swish_value(m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]))


LEAKY_RELU_OPTIONS = options("LeakyReluOptions", alpha="Alpha")


def leaky_relu_value(x_t, o_t, alpha, rounding="double"):
    """raw input -> raw output of reference_ops::QuantizeLeakyRelu.  A negative alpha gives a negative
    multiplier, which TF 2.21 passes to MultiplyByQuantizedMultiplier as it is (SRDHM rounds ties up, so this
    differs from negating the product of |multiplier|, as later TFLite versions do, on exact ties)."""
    in_scale, izp = _scalars(x_t)
    out_scale, ozp = _scalars(o_t)
    # LeakyReluPrepare: both real multipliers are float expressions (float scales and alpha)
    m_alpha, s_alpha = quantize_multiplier(float(in_scale * np.float32(alpha) / out_scale))
    m_id, s_id = quantize_multiplier(float(in_scale / out_scale))
    lo, hi = QRANGE[o_t.dtype]

    def value(v):
        x = v - izp
        if x >= 0:
            y = ozp + mbqm_int(x, m_id, s_id, rounding)
        else:
            y = ozp + mbqm_int(x, m_alpha, s_alpha, rounding)
        return max(lo, min(hi, y))
    return value


@register("LEAKY_RELU", family="activation", options=LEAKY_RELU_OPTIONS, validate=_unary_checks)
def lower_leaky_relu(ctx, op):
    """x >= 0 ? x : alpha * x as a 256-entry table of reference_ops::QuantizeLeakyRelu."""
    m = ctx.m
    alpha = op.options.get("alpha", 0.0)   # no options table: TFLite's params stay 0
    return _lut_op(ctx, op, leaky_relu_value(m.tensors[op.inputs[0]], m.tensors[op.outputs[0]], alpha,
                                             lookup(op.type).rounding))


# ---------------------------------------------------------------------------------------------------------------
# ABS


def _abs_checks(m, op):
    _unary_checks(m, op)
    x = m.tensors[op.inputs[0]]
    if x.dtype != "int8":
        m.fail("%s: tensor %r is %s; TFLite's ABS has no %s kernel (only int8 among the 8-bit types)."
               % (_what(op), x.name, x.dtype, x.dtype))


def abs_value(x_t, o_t, rounding="double"):
    """raw input -> raw output of elementwise.cc AbsEvalQuantized: |x - in_zp|, rescaled by
    MultiplyByQuantizedMultiplier(in_scale / out_scale, a float quotient) when the float scales differ, plus the
    output zero point, clamped."""
    in_scale, izp = _scalars(x_t)
    out_scale, ozp = _scalars(o_t)
    rescale = in_scale != out_scale
    mult, shift = quantize_multiplier(float(in_scale / out_scale)) if rescale else (0, 0)
    lo, hi = QRANGE[o_t.dtype]

    def value(v):
        a = abs(v - izp)
        y = (mbqm_int(a, mult, shift, rounding) if rescale else a) + ozp
        return max(lo, min(hi, y))
    return value


@register("ABS", family="activation", validate=_abs_checks)
def lower_abs(ctx, op):
    """|x| as a 256-entry table of elementwise.cc AbsEvalQuantized (int8; rescaled where the scales differ)."""
    m = ctx.m
    return _lut_op(ctx, op, abs_value(m.tensors[op.inputs[0]], m.tensors[op.outputs[0]], lookup(op.type).rounding))
