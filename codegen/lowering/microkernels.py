"""Kernels that call the hand-written microkernels of microkernels.h instead of a TE loop nest.

A microkernel op is still one TVM kernel (a PrimFunc that Relax plans and the ``c`` target emits): its body is a
single ``call_extern`` of a static inline C function with the layer's shapes as literal constants, so the C
compiler specialises the loops per layer and equal layers share one kernel.  Each such kernel has two outputs,
a scratch buffer (the int16 im2col columns, a zero-point row) and the op's output; Relax's memory planner
places the scratch like any short-lived tensor, so it shares workspace bytes with dead activations and is
counted in the RAM report.

This module holds the codegen-time half: re-laying the constant weights for the microkernels' loops, the
per-channel requantization tables, and the proof that the fast requantization forms are exact.
"""

import os

import numpy as np

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "microkernels.h")

RQ_LSHIFT, RQ_SMMUL, RQ_FAST, RQ_ZP = 1, 2, 4, 16
CONV_PAIR = 32
RQ_DOUBLED = 64
# the packed-pair conv pays (two fewer instructions per 16 MACs) only when the column sums and the longer
# epilogue are spread over enough inputs: measured on VWW, K4 = 64 gains, 32 loses
CONV_PAIR_MIN_K = 48
MAX_DEPTHWISE_TAPS = 64      # TVMGEN_MK_MAX_TAPS
MAX_AVGPOOL_TAPS = 255       # tvmgen_mk_avgpool's 16-bit lane sums


def enabled():
    """Microkernels are the default; TINYML_MICROKERNELS=0 keeps the TE loop nests (to compare the two)."""
    return os.environ.get("TINYML_MICROKERNELS", "1") != "0"


def header_source():
    with open(HEADER, encoding="utf-8") as f:
        return f.read()


def _round_up(n, k):
    return (n + k - 1) // k * k


def requant_double(bias, mult, shift, abound, constant, out_range):
    """Per-channel tables of TFLite's double-rounding MultiplyByQuantizedMultiplier for tvmgen_mk_requant.

    `abound[c]` bounds |sum + bias| of channel c; `constant[c]` says that channel c's weights are all zero, so
    its output is the requantized bias whatever the input; out_range = (output zero point, lo, hi).
    Returns (rq [n][4] int32 = bias, multiplier, right shift, rounding constant; lsh int8 [n]; flags)."""
    from .quant import mbqm_int
    n = len(bias)
    mult = np.asarray(mult, np.int64).copy()
    bias = np.asarray(bias, np.int64).copy()
    shift = np.asarray(shift, np.int64).copy()
    abound = np.asarray(abound, np.int64).copy()
    # A pruned channel (all weights zero) outputs q = clamp(MBQM(bias) + zp): re-encode it as bias 4 (q - zp),
    # multiplier 2^30, shift -1, which gives q through the fast forms (SRDHM -> 2 (q - zp), RDBPOT(., 1) ->
    # q - zp) and cannot veto them with a huge bias.
    ozp, lo, hi = out_range
    for c in np.flatnonzero(np.asarray(constant, bool)):
        q = min(max(mbqm_int(int(bias[c]), int(mult[c]), int(shift[c])) + ozp, lo), hi)
        bias[c], mult[c], shift[c], abound[c] = 4 * (q - ozp), 1 << 30, -1, abs(4 * (q - ozp))
    # A channel whose multiplier is 0 (its scale underflowed QuantizeMultiplier) outputs the zero point
    # whatever its sum: give it bias 0 and shift 1 so that it cannot veto the fast forms below.
    dead = mult == 0
    bias = np.where(dead, 0, bias)
    shift = np.where(dead, -1, shift)
    rsh = np.clip(-shift, 0, 31)
    lsh = np.clip(shift, 0, 30)
    bound = np.where(dead, 0, abound) << lsh
    flags = RQ_LSHIFT if lsh.max(initial=0) > 0 else 0
    if np.all(bound < 2 ** 30):           # 2 * (sum << lshift) fits int32: SRDHM is one SMMULR
        flags |= RQ_SMMUL
    # (v + 2^(r-1) + (v >> 31)) >> r is RoundingDivideByPOT when r >= 1 and the sum cannot overflow
    # (|SRDHM(v, m)| <= |v| for m < 2^31)
    fast = bool(rsh.min(initial=1) >= 1 and np.all(bound + (1 << np.maximum(rsh - 1, 0)) < 2 ** 31 - 1))
    if fast:
        flags |= RQ_FAST
    rconst = (1 << (rsh - 1)) if fast else (1 << rsh) - 1
    # (v + half + (v >> 31) + (zp << r)) >> r adds the zero point exactly when the sum cannot overflow
    if fast and np.all(bound + (1 << np.maximum(rsh - 1, 0)) + (abs(ozp) << rsh) < 2 ** 31 - 1):
        flags |= RQ_ZP
        rconst = rconst + (ozp << rsh)
    rq = np.stack([bias, mult, rsh, rconst], axis=1)
    assert rq.shape == (n, 4)
    return rq.astype(np.int32), lsh.astype(np.int8), flags


def doubled_sums(rq, flags, when):
    """The tables and flags for a kernel that delivers 2 * sum (doubled weights or inputs) when `when`: the bias
    doubled too, TVMGEN_RQ_DOUBLED set (SRDHM is then one SMMULR without a shift)."""
    if not when:
        return rq, flags
    rq = rq.copy()
    rq[:, 0] *= 2
    return rq, flags | RQ_DOUBLED


def requant_single(bias, mult, shift):
    """Tables of the single-rounding MultiplyByQuantizedMultiplier for tvmgen_mk_requant_single, or None when
    some channel's total shift 31 - shift is below 32 (the form needs the rounding term in the high word)."""
    shift = np.asarray(shift, np.int64)
    t = 31 - shift
    if t.min(initial=32) < 32 or t.max(initial=32) > 62:
        return None
    hi_round = np.where(t >= 33, 1 << np.maximum(t - 33, 0), 0)
    rq = np.stack([np.asarray(bias, np.int64), np.asarray(mult, np.int64), t - 32, hi_round], axis=1)
    return rq.astype(np.int32)


RQS_T32 = 1


def single_flags(rq):
    """TVMGEN_RQS_T32 when some channel's total shift is exactly 32 (rounding term in the low word)."""
    return RQS_T32 if np.any(rq[:, 2] == 0) else 0


FC_PER_TENSOR = 2    # TVMGEN_FC_PER_TENSOR
FC_DIRECT = 4        # TVMGEN_FC_DIRECT


def per_tensor_table(rq, n):
    """A requant_single table whose rows share multiplier, shift and rounding term (per-tensor weights) as
    tvmgen_mk_fc_pair takes it with TVMGEN_FC_PER_TENSOR: the row {0, m, t - 32, hr}, then the n biases
    (zero-padded), 4 bytes per output instead of 16; None when the rows differ."""
    if len(rq) == 0 or np.any(rq[:, 1:] != rq[0, 1:]):
        return None
    head = np.array([0, *rq[0, 1:]], np.int32)
    return np.concatenate([head, rq[:, 0], np.zeros(n - len(rq), np.int32)]).astype(np.int32)


def pad_rows(a, n):
    """`a` with zero rows appended up to `n` rows."""
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.zeros((n - a.shape[0],) + a.shape[1:], a.dtype)])


def conv_weights(w):
    """OHWI int8 weights -> [OC2/2][K4/4][2 channels][4 inputs] (K = KH*KW*C padded to K4, OC to an even
    OC2, with zeros)."""
    oc = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    oc2, k4 = _round_up(oc, 2), _round_up(k, 4)
    out = np.zeros((oc2, k4), np.int8)
    out[:oc, :k] = np.asarray(w, np.int8).reshape(oc, k)
    g = out.reshape(oc2 // 2, 2, k4 // 4, 4)
    return np.ascontiguousarray(g.transpose(0, 2, 1, 3))


def conv_pair_weights(w, xmax):
    """OHWI int8 weights -> the packed-pair bytes of tvmgen_mk_conv_pair ([OC2/2][K4/4][2 words: the group's
    inputs (0, 2) and (1, 3)][per input: b' = w + 128 of the pair's first channel, a = w of its second]), or
    None when a second channel's sum could reach 2^23 (|x - zp| <= xmax) or the unsigned sum 2^31."""
    oc = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    oc2, k4 = _round_up(oc, 2), _round_up(k, 4)
    wp = np.zeros((oc2, k4), np.int64)
    wp[:oc, :k] = np.asarray(w).reshape(oc, k)
    if np.any(xmax * np.abs(wp[1::2]).sum(1) >= 2 ** 23) or xmax * 256 * k4 >= 2 ** 31:
        return None
    b_lo = (wp[0::2] + 128).astype(np.uint8)
    a_hi = wp[1::2].astype(np.int8).view(np.uint8)
    halves = np.stack([b_lo, a_hi], axis=-1).reshape(oc2 // 2, k4 // 4, 2, 2, 2)   # [pair][group][k>>1][k&1][2]
    return np.ascontiguousarray(halves.transpose(0, 1, 3, 2, 4)).reshape(-1).view(np.int8)


def conv_stream(wbytes, rq):
    """tvmgen_mk_conv's one constant: for each channel pair p its weight bytes (conv_weights or conv_pair_weights,
    2 * K4 per pair), then rows 2p and 2p + 1 of the [OC2][4] int32 requantization table (little-endian), so that
    the pointer its loop advanced over the weights reads them next (no second table pointer)."""
    rq = np.ascontiguousarray(np.asarray(rq, "<i4"))
    pairs = rq.shape[0] // 2
    w = np.asarray(wbytes, np.int8).reshape(pairs, -1)
    assert w.shape[1] % 8 == 0      # the words after the weights stay 4-aligned
    return np.ascontiguousarray(np.concatenate([w, rq.reshape(pairs, 8).view(np.int8)], axis=1)).reshape(-1)


def depthwise_weights(w):
    """[1][KH][KW][C] int8 -> int16 [C4/4][KH*KW][4], lanes of a group in the order c0, c2, c1, c3."""
    _, kh, kw, c = w.shape
    c4 = _round_up(c, 4)
    wt = np.zeros((kh * kw, c4), np.int16)
    wt[:, :c] = np.asarray(w, np.int16).reshape(kh * kw, c)
    g = wt.reshape(kh * kw, c4 // 4, 4)[:, :, [0, 2, 1, 3]]      # [T][G][4]
    return np.ascontiguousarray(g.transpose(1, 0, 2))               # [G][T][4]


def dw3_enabled():
    """The 3x3 row-ring depthwise kernel (tvmgen_mk_dw3) is the default for the layers it takes; TINYML_DW3=0
    keeps tvmgen_mk_dwconv for them (to compare the two)."""
    return os.environ.get("TINYML_DW3", "1") != "0"


def dw3_fits(kh, kw, sh, sw, dh, dw, dm):
    """tvmgen_mk_dw3 takes 3x3 windows, strides 1 or 2 (equal both ways), no dilation, depth multiplier 1; it is
    chosen for stride 1 only (TINYML_DW3=2 also for stride 2): at stride 2 each input row is re-laid for fewer
    outputs, no Thumb-2 loop covers it, and VWW's stride-2 layers measured 6-20% more instructions than with
    tvmgen_mk_dwconv."""
    strides = (1, 2) if os.environ.get("TINYML_DW3", "1") == "2" else (1,)
    return dw3_enabled() and (kh, kw, dh, dw, dm) == (3, 3, 1, 1, 1) and sh == sw and sh in strides


def dw3_width(W, OW, S, PL):
    """Bytes of one channel's padded row in tvmgen_mk_dw3's ring: the input's W columns after PL padding ones,
    and the columns the last (possibly unstored) output pair loads (up to S * OW + 2), rounded up to 4."""
    return _round_up(max(PL + W, S * OW + 3), 4)


def dw3_scratch(W, C, OW, S, PL):
    """Bytes of tvmgen_mk_dw3's ring: four padded rows of every channel."""
    return 4 * C * dw3_width(W, OW, S, PL)


def dw3_weights(w):
    """[1][3][3][C] int8 -> int16 [C][10] = (w00, w02), (w10, w12), (w20, w22), (w01, w11), (w21, 0)."""
    w = np.asarray(w, np.int16)[0]                      # [3][3][C]
    c = w.shape[-1]
    out = np.zeros((c, 10), np.int16)
    for k in range(3):
        out[:, 2 * k] = w[k, 0]
        out[:, 2 * k + 1] = w[k, 2]
    out[:, 6], out[:, 7], out[:, 8] = w[0, 1], w[1, 1], w[2, 1]
    return out


def dw3_params(w16, rq):
    """tvmgen_mk_dw3's per-channel words [C][9]: the five words of dw3_weights' int16 pairs (little-endian), then
    bias, multiplier, rounding constant, right shift (rq's fields 0, 1, 3, 2), in the order its loops load them."""
    w16 = np.ascontiguousarray(np.asarray(w16, "<i2"))
    words = w16.view("<i4").reshape(w16.shape[0], 5).astype(np.int32)
    rq = np.asarray(rq, np.int32)
    return np.ascontiguousarray(np.concatenate([words, rq[:, [0, 1, 3, 2]]], axis=1))


def dw3_inplace_delta(H, W, C, OH, OW, S, PT):
    """Largest output-start minus input-start (bytes) for tvmgen_mk_dw3: output row oh is written after input
    rows up to oh * S - PT + 2 are in its ring (at least: two rows at a time copy one row more before the first),
    so its bytes must stay below the first input row still to come."""
    room = []
    for oh in range(OH):
        nxt = max(oh * S - PT + 3, 0)                     # first input row not yet in the ring
        if nxt >= H:
            break                                         # the whole input is in the ring or read
        room.append(nxt * W * C - (oh + 1) * OW * C)
    return int(min(room)) if room else 0


def fc_weights(w):
    """[U][K] int8 -> [U4/4][K4/4][4 outputs][4 inputs]."""
    u, k = w.shape
    u4, k4 = _round_up(u, 4), _round_up(k, 4)
    wp = np.zeros((u4, k4), np.int8)
    wp[:u, :k] = w
    g = wp.reshape(u4 // 4, 4, k4 // 4, 4)
    return np.ascontiguousarray(g.transpose(0, 2, 1, 3))


def fc_pair_weights(w):
    """[U][K] int8 -> the bytes of tvmgen_mk_fc_pair, or None when an odd output's sum could reach 2^23 (its
    value is recovered from a 32-bit difference scaled by 256)."""
    u, k = w.shape
    u4, k4 = _round_up(u, 4), k // 4 * 4
    wp = np.zeros((u4, k), np.int64)
    wp[:u] = w
    if np.any(128 * np.abs(wp[1::2]).sum(1) >= 2 ** 23):
        return None
    b_lo = (wp[0::2] + 128).astype(np.uint8)        # [U4/2][K] outputs 2p: unsigned low bytes
    a_hi = wp[1::2].astype(np.int8).view(np.uint8)  # [U4/2][K] outputs 2p+1: signed high bytes
    halves = np.stack([b_lo, a_hi], axis=-1)        # [U4/2][K][2]
    body = halves[:, :k4].reshape(u4 // 4, 2, k4 // 4, 2, 2, 2)      # [U4/4][pair][group][k>>1][k&1][2]
    body = body.transpose(0, 2, 1, 4, 3, 5)                          # [U4/4][group][pair][k&1][k>>1][2]
    tail = halves[:, k4:]                                            # [U4/2][K%4][2]
    return np.concatenate([body.reshape(-1), tail.reshape(-1)]).astype(np.uint8)


def emit_call(ctx, op, cfunc, inputs, out_shape, out_dtype, scratch_elems, scratch_dtype, scalars,
              scratch=True):
    """One kernel: `cfunc(*inputs, [scratch,] out, *scalars)` (pointers, then int32 literals)."""
    from tvm import te, tirx
    shape = tuple(int(d) for d in out_shape)
    lits = [tirx.const(int(v), "int32") for v in scalars]

    if not scratch:
        def f1(*ins_te):
            return te.extern(shape, list(ins_te), lambda ins, outs: tirx.call_extern(
                "int32", cfunc, *[i.data for i in ins], outs[0].data, *lits), dtype=out_dtype, name="mk")
        return ctx.emit(op, f1, inputs)

    def f(*ins_te):
        def body(ins, outs):
            args = [i.data for i in ins] + [outs[0].data, outs[1].data]
            return tirx.call_extern("int32", cfunc, *args, *lits)
        return te.extern([(max(int(scratch_elems), 1),), shape], list(ins_te),
                         body, dtype=[scratch_dtype, out_dtype], name="mk")

    return ctx.emit_extern(op, f, inputs)
