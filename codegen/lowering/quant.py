"""TFLite's integer quantization arithmetic, in Python (for constants computed at codegen time) and as TIR
expressions (for the kernels).  Mirrors tensorflow/lite/kernels/internal/quantization_util and gemmlowp's
fixed-point helpers; every op family builds on these, so a rounding rule lives in exactly one place."""

import math

import numpy as np

from ..errors import ModelError

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t", "float32": "float"}
QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


# ----------------------------------------------------------------------------------------------
# TFLite quantization helpers (pure Python, mirror tensorflow/lite/kernels/internal/quantization_util)

def round_half_away(x):
    """TfLiteRound / std::round: round half away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real):
    """QuantizeMultiplier(double) -> (int32 quantized_multiplier, int shift).  OverflowError for an infinite or
    NaN `real` (a ratio of scales that overflowed float32: undefined in TFLite)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise OverflowError("requantization multiplier %r is not finite" % real)
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def activation_range(act, scale, zp, dtype):
    """CalculateActivationRangeQuantized."""
    qmin, qmax = QRANGE[dtype]
    scale = np.float32(scale)

    def q(f):
        return int(zp) + int(round_half_away(float(np.float32(f) / scale)))

    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ModelError("fused activation %s is not supported" % act)


def same_padding(in_size, filt, stride, dilation, out_size):
    """ComputePaddingWithOffset: returns the top/left padding."""
    eff = (filt - 1) * dilation + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def per_channel_multipliers(in_scale, w_scales, out_scale, n):
    """PopulateConvolutionQuantizationParams: effective scale in double from float32 scales."""
    ws = np.broadcast_to(np.asarray(w_scales, np.float32), (n,))
    mult = np.zeros(n, np.int32)
    shift = np.zeros(n, np.int32)
    for i in range(n):
        eff = float(np.float32(in_scale)) * float(ws[i]) / float(np.float32(out_scale))
        mult[i], shift[i] = quantize_multiplier(eff)
    return mult, shift


# ----------------------------------------------------------------------------------------------
# Integer building blocks in TIR expressions

def i32(v):
    from tvm import tirx
    return tirx.const(int(v), "int32")


def i64(v):
    from tvm import tirx
    return tirx.const(int(v), "int64")


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul(a, b) for int32 a, b.

    The saturating case (a == b == INT32_MIN) cannot occur here: quantized
    multipliers are always positive."""
    # gemmlowp: (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with truncating division.  For
    # ab >= 0 that is (ab + 2^30) >> 31; for ab < 0 the sum is negative and truncation equals
    # flooring after adding 2^31 - 1, i.e. (ab + 1 - 2^30 + 2^31 - 1) >> 31 = (ab + 2^30) >> 31
    # as well.  One arithmetic shift, no 64-bit division (a libgcc call on 32-bit MCUs).
    ab = a.astype("int64") * b.astype("int64")
    return ((ab + i64(1 << 30)) >> i64(31)).astype("int32")


def rdbpot(x, exponent):
    """RoundingDivideByPOT(x, exponent) (arithmetic shift with round-half-away)."""
    from tvm import tirx
    if isinstance(exponent, int):
        if exponent == 0:
            return x
        mask = i32((1 << exponent) - 1)
        threshold = tirx.Select(x < i32(0), i32((((1 << exponent) - 1) >> 1) + 1),
                                i32(((1 << exponent) - 1) >> 1))
        return (x >> i32(exponent)) + tirx.Select((x & mask) > threshold, i32(1), i32(0))
    e = exponent
    mask = ((tirx.const(1, "uint32") << e.astype("uint32"))
            - tirx.const(1, "uint32")).astype("int32")  # 0 <= e <= 31
    threshold = (mask >> i32(1)) + tirx.Select(x < i32(0), i32(1), i32(0))
    return (x >> e) + tirx.Select((x & mask) > threshold, i32(1), i32(0))


def rdbpot_masked(x, exponent, mask):
    """RoundingDivideByPOT with mask = 2^exponent - 1 given: TFLite rounds up when
    (x & mask) > (mask >> 1) + (x < 0).  As t = (mask >> 1) - (x >> 31) - (x & mask) cannot
    overflow and is negative exactly then, the result is (x >> exponent) - (t >> 31): no
    compare, no branch (and nothing TVM's simplifier widens to int64)."""
    t = (mask >> i32(1)) - (x >> i32(31)) - (x & mask)
    return (x >> exponent) - (t >> i32(31))


def left_shift_overflows(qrange, zero_point, shift):
    """Does MultiplyByQuantizedMultiplier's int32 left shift (x - zero_point) * 2^shift overflow for some 8-bit x in
    `qrange`?  TFLite's compiled kernels then wrap around; C code computing it would be undefined (gcc keeps the
    product in 64 bits), so such an op is lowered as a lookup table computed with mbqm_int's wrap-around."""
    if shift <= 0:
        return False
    worst = max(abs(qrange[0] - zero_point), abs(qrange[1] - zero_point))
    return worst * (1 << shift) > 2 ** 31 - 1


def mbqm(x, mult, shift, shift_range=(-31, 30)):
    """MultiplyByQuantizedMultiplier(x, mult, shift) with TFLite's double rounding
    (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT).

    `shift` is a Python int or an int32 expression (a per-channel table load) whose values
    lie in `shift_range`; the shift amounts are clamped to that range so TVM's bound
    analysis sees sane ranges and no left-shift code is emitted when none is needed."""
    from tvm import tirx
    if isinstance(shift, int):
        left, right = max(shift, 0), max(-shift, 0)
        if left:
            x = x * i32(1 << left)
        return rdbpot(srdhm(x, i32(mult) if isinstance(mult, int) else mult), right)
    lo, hi = int(shift_range[0]), int(shift_range[1])
    if hi > 0:
        left = tirx.min(tirx.max(shift, i32(0)), i32(hi))
        x = x * (i64(1) << left.astype("int64")).astype("int32")
    if lo < 0:
        right = tirx.min(tirx.max(i32(0) - shift, i32(0)), i32(-lo))
        return rdbpot(srdhm(x, mult), right)
    return srdhm(x, mult)


def mbqm_single(x, mult, shift, shift_range=(-31, 30)):
    """MultiplyByQuantizedMultiplier with a single rounding (TFLITE_SINGLE_ROUNDING form):
    (x * mult + 2^(30 - shift)) >> (31 - shift), in int64."""
    from tvm import tirx
    if isinstance(shift, int):
        ts = 31 - shift
        return ((x.astype("int64") * i64(mult) + i64(1 << (ts - 1))) >> i64(ts)).astype("int32")
    lo, hi = int(shift_range[0]), int(shift_range[1])
    ts = tirx.min(tirx.max(i32(31) - shift, i32(31 - hi)), i32(31 - lo)).astype("int64")
    return ((x.astype("int64") * mult.astype("int64") + (i64(1) << (ts - i64(1))))
            >> ts).astype("int32")


# Which MultiplyByQuantizedMultiplier rounding an op uses is part of its registry entry (OpDef.rounding):
# measured against TF 2.21's BUILTIN_REF, CONV_2D / DEPTHWISE_CONV_2D / MEAN / QUANTIZE match the double-rounding
# form exactly (and differ with single rounding); per-channel FULLY_CONNECTED matches only the single-rounding
# form (x.4998 cases round down).
def requant_fn(rounding):
    return {"double": mbqm, "single": mbqm_single}[rounding]


def clamp_cast(v, lo, hi, dtype):
    from tvm import tirx
    return tirx.max(tirx.min(v, i32(hi)), i32(lo)).astype(dtype)


# ----------------------------------------------------------------------------------------------
# The same integer building blocks on Python ints, for tables computed at codegen time (e.g. the 256-entry
# lookup table of an int8 activation).  `bits` is the width of the C integer type TFLite computes in: results
# wrap like a conversion to int16_t / int32_t.

def wrap_int(v, bits=32):
    """`v` converted to a signed `bits`-bit integer (two's complement wrap-around)."""
    half = 1 << (bits - 1)
    return ((int(v) + half) % (1 << bits)) - half


def srdhm_int(a, b, bits=32):
    """gemmlowp SaturatingRoundingDoublingHighMul for int16 (bits=16) or int32 operands."""
    lo = -(1 << (bits - 1))
    if a == b == lo:
        return -lo - 1
    ab = int(a) * int(b)
    nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    num, den = ab + nudge, 1 << (bits - 1)
    q = abs(num) // den          # C division truncates toward zero
    return wrap_int(q if num >= 0 else -q, bits)


def rdbpot_int(x, exponent, bits=32):
    """gemmlowp RoundingDivideByPOT in `bits`-bit arithmetic (mask, threshold and sum wrap like the C types)."""
    mask = wrap_int((1 << exponent) - 1, bits)
    remainder = x & mask
    threshold = wrap_int((mask >> 1) + (1 if x < 0 else 0), bits)
    return wrap_int((x >> exponent) + (1 if remainder > threshold else 0), bits)


def mbqm_int(x, mult, shift, rounding="double"):
    """MultiplyByQuantizedMultiplier(int32 x, mult, shift) on Python ints, in the op's rounding form
    (OpDef.rounding): "double" = SRDHM then RoundingDivideByPOT, "single" = one int64 rounding shift."""
    if rounding == "single":
        total = 31 - shift
        return wrap_int((int(x) * int(mult) + (1 << (total - 1))) >> total)
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot_int(srdhm_int(wrap_int(int(x) * (1 << left)), mult), right)
