"""The int8 fast paths of issue 23 (codegen/lowering/microkernels.h): depthwise interior pixels in pairs
(tvmgen_mk_dw_pair), 3x3 depthwise through a ring of channel-major rows (tvmgen_mk_dw3),
requantization by one SMMLAR, AVERAGE_POOL_2D as a microkernel (tvmgen_mk_avgpool), the
SOFTMAX exp table (ops/reduce.py softmax_exp_table) and the word-wise im2col of small windows over few channels;
FULLY_CONNECTED's per-tensor table (TVMGEN_FC_PER_TENSOR) and in-place row (TVMGEN_FC_DIRECT), ADD / SUB with
doubled tables (TVMGEN_RQ_DOUBLED); the integer LSTM's SMLAD matrix-vector products and int16 doubling high mul;
the 16x8 CONV_2D microkernel (tvmgen_mk_conv16: rows read in place or windows copied, the one-SMULL
requantization; the case's last literal, `fast`, is 1 where checked); PAD / PADV2 of one-byte tensors
(tvmgen_mk_pad); MAX_POOL_2D int8 (tvmgen_mk_maxpool).

Fast: the differential fuzzer's generators reach every one of these paths and their borders (so every fuzz run
exercises them), and the softmax exp table equals the fixed-point chain the TE kernel computes without it.
Heavy: hand-picked models of each path, bit-exact with tf.lite BUILTIN_REF on every tensor on the host (plain C
paths, as on AVR) and on the emulated Cortex-M4 (the DSP / Thumb-2 asm paths)."""
import os
import random
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from codegen import fuzz  # noqa: E402
from codegen.lowering.quant import same_padding  # noqa: E402

HAVE_QEMU = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


@pytest.fixture(autouse=True)
def _restore_microkernels():
    before = os.environ.get("TINYML_MICROKERNELS")
    dw3 = os.environ.pop("TINYML_DW3", None)
    yield
    if dw3 is None:
        os.environ.pop("TINYML_DW3", None)
    else:
        os.environ["TINYML_DW3"] = dw3
    if before is None:
        os.environ.pop("TINYML_MICROKERNELS", None)
    else:
        os.environ["TINYML_MICROKERNELS"] = before


def _geometry(layer, shape, out_shape):
    _, H, W, C = shape
    _, OH, OW, _ = out_shape
    KH, KW = layer["k"]
    SH, SW = layer["s"]
    DH, DW = layer.get("d", [1, 1])
    PT = same_padding(H, KH, SH, DH, OH) if layer["pad"] == "SAME" else 0
    PL = same_padding(W, KW, SW, DW, OW) if layer["pad"] == "SAME" else 0
    return H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL


def _interior(H, W, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL):
    """(rows, run length) of the output pixels whose taps are all inside the input (as tvmgen_mk_dwconv)."""
    oh_lo, ow_lo = (PT + SH - 1) // SH, (PL + SW - 1) // SW
    hr, wr = H - 1 + PT - (KH - 1) * DH, W - 1 + PL - (KW - 1) * DW
    oh_hi = hr // SH + 1 if hr >= 0 else 0
    ow_hi = wr // SW + 1 if wr >= 0 else 0
    return max(0, min(oh_hi, OH) - oh_lo), max(0, min(ow_hi, OW) - ow_lo)


def _specs(op, n, seed):
    r = random.Random(seed)
    for _ in range(n):
        spec = fuzz.random_spec(r, op)
        shape = list(spec["input"])
        for layer in spec["layers"]:
            out = fuzz.layer_shape(spec, layer, shape)
            if layer["op"] == op:
                yield spec, layer, shape, out
            shape = out


def test_fuzzer_reaches_the_depthwise_pairs_and_their_borders():
    seen = set()
    for spec, layer, shape, out in _specs("DEPTHWISE_CONV_2D", 160, 23):
        if len(shape) != 4 or layer["mult"] != 1 or spec["uint8_kernels"]:
            continue
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = _geometry(layer, shape, out)
        rows, run = _interior(H, W, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL)
        fits = KH * KW <= 25 and ((KH - 1) * DH * W + (KW - 1) * DW + SW) * C + (C & ~3) <= 4095
        if rows and run >= 2 and fits:
            seen.add("pairs")
            seen.add("pairs, C % 4 tail" if C % 4 else "pairs, whole groups")
            if C < 4:
                seen.add("pairs, tail only")
            if run % 2:
                seen.add("pairs + a lone interior pixel")
            if SW > 1:
                seen.add("pairs, stride > 1")
            if DH > 1 or DW > 1:
                seen.add("pairs, dilation > 1")
            if rows * run < OH * OW:
                seen.add("pairs + border pixels")
        if rows and run >= 2 and not fits:
            seen.add("interior too wide for pairs")
    want = {"pairs", "pairs, C % 4 tail", "pairs, whole groups", "pairs, tail only", "pairs + a lone interior pixel",
            "pairs, stride > 1", "pairs, dilation > 1", "pairs + border pixels"}
    assert want <= seen, sorted(want - seen)


def test_fuzzer_reaches_the_3x3_ring_kernel_and_its_borders():
    from codegen.lowering import microkernels as mk
    seen = set()
    for spec, layer, shape, out in _specs("DEPTHWISE_CONV_2D", 160, 23):
        if len(shape) != 4 or layer["mult"] != 1 or spec["uint8_kernels"]:
            continue
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = _geometry(layer, shape, out)
        if not mk.dw3_fits(KH, KW, SH, SW, DH, DW, 1):
            continue
        seen.add("ring")
        seen.add("odd channel count" if C % 2 else "even channel count")
        seen.add("pairs + a last odd output" if OW % 2 else "pairs only")
        if PT or PL:
            seen.add("padding rows and columns")
        if OH < 3 or OW < 3:
            seen.add("map smaller than the window")
    want = {"ring", "odd channel count", "even channel count", "pairs + a last odd output", "pairs only",
            "padding rows and columns", "map smaller than the window"}
    assert want <= seen, sorted(want - seen)


def _dw3_clobbers(H, W, C, OH, OW, S, PT, delta):
    """Replays tvmgen_mk_dw3's order (rows into the ring, then one output row) with the output at input + delta:
    True when an output byte lands on an input byte before the ring has copied it."""
    copied = 0                         # input rows [0, copied) are in the ring
    for oh in range(OH):
        copied = min(max(copied, oh * S - PT + 3), H)
        lo, hi = delta + oh * OW * C, delta + (oh + 1) * OW * C     # the bytes output row oh writes
        if hi > copied * W * C and lo < H * W * C:
            return True
    return False


def test_3x3_ring_inplace_delta_is_safe_and_tight():
    from codegen.lowering import microkernels as mk
    r = random.Random(5)
    for _ in range(300):
        S = r.choice((1, 2))
        H, W, C = r.randint(1, 12), r.randint(1, 12), r.randint(1, 9)
        pad = r.choice((True, False))
        OH = -(-H // S) if pad else max((H - 3) // S + 1, 0)
        OW = -(-W // S) if pad else max((W - 3) // S + 1, 0)
        if OH < 1 or OW < 1:
            continue
        PT = same_padding(H, 3, S, 1, OH) if pad else 0
        d = mk.dw3_inplace_delta(H, W, C, OH, OW, S, PT)
        assert not _dw3_clobbers(H, W, C, OH, OW, S, PT, d), (H, W, C, OH, OW, S, PT, d)
        if any(oh * S - PT + 3 < H for oh in range(OH)):      # some output row is written before the last row
            assert _dw3_clobbers(H, W, C, OH, OW, S, PT, d + 1), (H, W, C, OH, OW, S, PT, d)


def test_3x3_ring_weights_layout():
    from codegen.lowering import microkernels as mk
    w = np.arange(1, 1 + 9 * 3, dtype=np.int8).reshape(1, 3, 3, 3)
    lay = mk.dw3_weights(w)
    for c in range(3):
        k = w[0, :, :, c]
        assert list(lay[c]) == [k[0, 0], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 2], k[0, 1], k[1, 1], k[2, 1], 0]
    assert mk.dw3_width(48, 48, 1, 1) % 4 == 0 and mk.dw3_width(48, 48, 1, 1) >= 48 + 3


def test_fuzzer_reaches_every_loop_shape_of_the_int8_conv_kernel():
    """tvmgen_mk_conv's Thumb-2 loop: one or two steps straight (K4 = 4, 8), two per iteration with an odd one
    after (K4 = 8n + 4) or without (K4 = 8n), with the SXTB16 weights and (K4 >= CONV_PAIR_MIN_K) packed pairs."""
    from codegen.lowering import microkernels as mk
    seen = set()
    for spec, layer, shape, out in _specs("CONV_2D", 400, 5):
        if len(shape) != 4 or spec["in_type"] != "int8" or spec["uint8_kernels"]:
            continue
        k4 = -(-layer["k"][0] * layer["k"][1] * shape[3] // 4) * 4
        seen.add((k4 if k4 <= 8 else "8n+4" if k4 % 8 else "8n", k4 >= mk.CONV_PAIR_MIN_K))
    want = {(4, False), (8, False), ("8n+4", False), ("8n", False), ("8n+4", True), ("8n", True)}
    assert want <= seen, sorted(want - seen, key=str)


def test_conv_stream_layout():
    """Each channel pair's weight bytes, then its two requantization rows as little-endian words."""
    from codegen.lowering import microkernels as mk
    w = np.arange(-7, 8, dtype=np.int8).reshape(3, 1, 1, 5)                 # OC = 3 (OC2 = 4), K = 5 (K4 = 8)
    wb = mk.conv_weights(w)
    rq = np.arange(16, dtype=np.int32).reshape(4, 4) * -1001
    st = mk.conv_stream(wb, rq)
    assert st.dtype == np.int8 and st.size == 2 * (2 * 8 + 32)
    for p in range(2):
        blk = st[p * 48:(p + 1) * 48]
        assert np.array_equal(blk[:16], wb[p].reshape(-1))
        assert np.array_equal(blk[16:].view("<i4"), rq[2 * p:2 * p + 2].reshape(-1))


# What each pooling microkernel must meet in the fuzzer's models (tvmgen_mk_avgpool, tvmgen_mk_maxpool)
POOL_REACH = {"AVERAGE_POOL_2D": {"groups of four", "channels one by one", "groups + tail", "whole windows",
                                  "clipped windows"},
              "MAX_POOL_2D": {"groups of four", "channels one by one", "groups + tail", "clipped windows", "clamp"}}


@pytest.mark.parametrize("op", list(POOL_REACH))
def test_fuzzer_reaches_the_pool_kernels_and_their_borders(op):
    seen = set()
    for spec, layer, shape, out in _specs(op, 80, 7):
        if len(shape) != 4 or spec["uint8_kernels"] or spec["in_type"] != "int8":
            continue
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = _geometry(layer, shape, out)
        rows, run = _interior(H, W, OH, OW, KH, KW, SH, SW, 1, 1, PT, PL)
        seen.add("groups of four" if C >= 4 else "channels one by one")
        if C % 4 and C > 4:
            seen.add("groups + tail")
        if rows and run:
            seen.add("whole windows")
        if rows * run < OH * OW:
            seen.add("clipped windows")
        if layer["act"] != "NONE":
            seen.add("clamp")
    assert POOL_REACH[op] <= seen, sorted(POOL_REACH[op] - seen)


def test_softmax_exp_table_is_the_fixed_point_chain():
    """softmax_exp_table against a direct transcription of gemmlowp's exp_on_negative_values (fixedpoint.h) on
    Q5.26 inputs, for several input scales and betas."""
    from codegen.lowering.ops.reduce import softmax_exp_table, softmax_params
    from codegen.lowering.quant import rdbpot_int, srdhm_int, wrap_int

    def exp_on_negative_values(a):                         # a: Q5.26, <= 0
        k_one_quarter = 1 << 24
        mask = k_one_quarter - 1
        a_mod = wrap_int((a & mask) - k_one_quarter)
        x = wrap_int(a_mod * 32 + (1 << 28))                # Rescale<0> of a_mod_quarter_minus_one_quarter + 1/8
        c = 1895147668
        x2 = srdhm_int(x, x)
        x3 = srdhm_int(x2, x)
        x4 = srdhm_int(x2, x2)
        x4_over_4 = rdbpot_int(x4, 2)
        poly = rdbpot_int(wrap_int(srdhm_int(wrap_int(x4_over_4 + x3), 715827883) + x2), 1)
        result = wrap_int(c + srdhm_int(c, wrap_int(x + poly)))
        remainder = wrap_int(a_mod - a)
        for e, m in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                     (3, 720401), (4, 242)):
            if remainder & (1 << (26 + e)):
                result = srdhm_int(result, m)
        return 2 ** 31 - 1 if a == 0 else result

    seen = set()
    for scale, beta in ((0.05, 1.0), (0.1, 1.0), (0.3, 0.5), (1 / 16, 2.0), (0.0125, 1.0), (0.004, 1.0)):
        mult, lshift, diff_min = softmax_params(beta, scale)
        table = softmax_exp_table(mult, lshift, diff_min)
        d_lo = max(diff_min, -255)
        assert len(table) == 1 - d_lo
        for d in range(d_lo, 1):
            want = exp_on_negative_values(srdhm_int(wrap_int(d * (1 << lshift)), mult))
            assert int(table[d - d_lo]) == want, (scale, beta, d)
        assert table[-1] == 2 ** 31 - 1 and np.all(table[:-1] < 2 ** 31 - 1)
        seen.add(len(table) < 256)
    assert seen == {True, False}, "the scales should give a trimmed table and a full one"


def _spec(input_shape, layers, seed=3, in_type="int8", per_channel=True, scale=1.0, offset=0.2):
    u8 = in_type == "uint8"          # TFLite's uint8 kernels (per-tensor)
    return {"input": input_shape, "in_type": in_type, "out_type": in_type, "per_channel": per_channel and not u8,
            "uint8_kernels": u8, "scale": scale, "offset": offset, "seed": seed, "layers": layers}


def _dw(k, s=(1, 1), d=(1, 1), pad="SAME", act="NONE"):
    return {"op": "DEPTHWISE_CONV_2D", "k": list(k), "s": list(s), "d": list(d), "pad": pad, "act": act, "mult": 1,
            "bias": True}


def _avg(k, s=(1, 1), pad="SAME", act="NONE"):
    return {"op": "AVERAGE_POOL_2D", "k": list(k), "s": list(s), "pad": pad, "act": act}


# name -> spec: each reaches one of the paths above (and its borders) on both targets
CASES = {
    # 9x13x12: interior runs of 11 (5 pairs + a lone pixel), three whole groups, a border ring
    "dw_pairs_groups": _spec([1, 9, 13, 12], [_dw((3, 3), act="RELU6")]),
    # C = 6: a group and a tail of two in every pair; stride 2 (pairs SW * C apart)
    "dw_pairs_tail_stride2": _spec([1, 9, 16, 6], [_dw((3, 3), s=(2, 2))], seed=4),
    # C = 3: pairs with tail channels only; dilation 2; an even 2x4 kernel
    "dw_pairs_dilated_c3": _spec([1, 8, 13, 3], [_dw((2, 4), d=(2, 1))], seed=5),
    # 5x5 window over C = 16 (25 taps, the most a pair unrolls), VALID; then 1x1 taps (T = 1)
    "dw_pairs_5x5_then_1x1": _spec([1, 9, 11, 16], [_dw((5, 5), pad="VALID"), _dw((1, 1))], seed=6,
                                   per_channel=False),
    # rows too wide for pairs (offsets beyond an LDR immediate): one pixel at a time, same results
    "dw_wide_rows": _spec([1, 5, 24, 64], [_dw((3, 3))], seed=7),
    # the 3x3 ring (tvmgen_mk_dw3): odd C, odd and even output widths, padding rows/columns, maps smaller than
    # the window, VALID; then C = 1 over a 2x5 map (bottom padding row re-filled) and a map of one row
    "dw3_odd_c_relu6": _spec([1, 7, 9, 5], [_dw((3, 3), act="RELU6"), _dw((3, 3), pad="VALID")], seed=21),
    "dw3_small_maps": _spec([1, 3, 3, 16], [_dw((3, 3)), _dw((3, 3), act="RELU")], seed=22, scale=2.0),
    "dw3_c1_rows": _spec([1, 2, 5, 1], [_dw((3, 3))], seed=23, offset=-0.4),
    "dw3_one_row_c7": _spec([1, 1, 6, 7], [_dw((3, 3))], seed=24),
    # whole and clipped windows (counts 4, 6, 9), groups of four and a tail of 2; then stride 2 VALID, C = 3
    "avgpool_borders": _spec([1, 7, 9, 10], [_avg((3, 3), act="RELU"), _avg((2, 2), s=(2, 2), pad="VALID")],
                             seed=8),
    "avgpool_c3_4x4": _spec([1, 8, 8, 3], [_avg((4, 4), s=(3, 3))], seed=9, scale=3.0, offset=-0.5),
    # softmax: 2 values (VWW's head), 12 (KWS), rows of 7 over a 3-D tensor, beta 0.5, uint8
    "softmax_2": _spec([1, 2], [{"op": "SOFTMAX", "beta": 1.0}], seed=10, scale=4.0, offset=0.0),
    "softmax_12_beta2": _spec([1, 12], [{"op": "SOFTMAX", "beta": 2.0}], seed=11, scale=2.0, offset=-0.3),
    "softmax_rows_uint8": _spec([1, 3, 7], [{"op": "SOFTMAX", "beta": 0.5}], seed=12, in_type="uint8"),
    # first-layer convolutions: C = 3 and C = 1 windows (word-wise im2col), C = 2 with dilation (byte-wise)
    "conv_c3_first_layer": _spec([1, 11, 12, 3], [{"op": "CONV_2D", "k": [3, 3], "s": [2, 2], "d": [1, 1],
                                                   "pad": "SAME", "act": "RELU", "out": 8, "bias": True}], seed=13),
    "conv_c1_5x5": _spec([1, 9, 9, 1], [{"op": "CONV_2D", "k": [5, 5], "s": [1, 1], "d": [1, 1], "pad": "SAME",
                                         "act": "NONE", "out": 4, "bias": True}], seed=14),
    "conv_c2_dilated": _spec([1, 9, 9, 2], [{"op": "CONV_2D", "k": [3, 3], "s": [1, 1], "d": [2, 2],
                                             "pad": "VALID", "act": "RELU6", "out": 5, "bias": False}], seed=15),
}


# the ring kernel at stride 2 (not chosen by default, TINYML_DW3=2 turns it on): odd C, SAME and VALID
DW3_S2 = {"dw3_stride2": _spec([1, 9, 11, 5], [_dw((3, 3), s=(2, 2)), _dw((3, 3), s=(2, 2), pad="VALID")],
                               seed=25)}
CASES.update(DW3_S2)


def _fc(out, act="NONE"):
    return {"op": "FULLY_CONNECTED", "out": out, "act": act, "bias": True}


# FULLY_CONNECTED modes: 2925 inputs (K % 4 = 1) are too many for the paired kernel's 2^23 bound, so the SXTB16
# kernel reads the row in place (TVMGEN_FC_DIRECT, no int16 copy), 7 outputs (U % 4 = 3); per-tensor weights
# take the paired kernel's one-row table (TVMGEN_FC_PER_TENSOR), K = 39 and 10, U = 10 and 7, a RELU clamp
FC_CASES = {
    "fc_direct_wide": (_spec([1, 15, 15, 13], [_fc(7, "RELU")], seed=16, scale=0.5), "tvmgen_mk_fc", 4),
    "fc_pair_per_tensor": (_spec([1, 3, 13], [_fc(10, "RELU"), _fc(7)], seed=17, per_channel=False),
                           "tvmgen_mk_fc_pair", 2),
}
# ADD / SUB of two tensors of one shape (tvmgen_mk_add): the tables hold twice each scaled value
# (TVMGEN_RQ_DOUBLED = 64); two elements per iteration, 630 and an odd 105 of them (the one-element tail)
FC_CASES.update({
    "add_doubled_pairs": (_spec([1, 7, 9, 10], [{"op": "ADD", "other": "self", "bshape": [], "swap": False,
                                                 "act": "RELU"}], seed=18), "tvmgen_mk_add", 64),
    "sub_doubled_odd": (_spec([1, 5, 7, 3], [{"op": "SUB", "other": "self", "bshape": [], "swap": True,
                                              "act": "NONE"}], seed=19, scale=3.0), "tvmgen_mk_add", 64),
})
CASES.update({name: case[0] for name, case in FC_CASES.items()})


def _lstm(batch, steps, feats, units, seed, **kw):
    layer = {"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "units": units, "cifg": False, "proj": 0, "time_major": False,
             "cell_clip": 0.0, "proj_clip": 0.0, "cell_log2": -12, "x_zp": -57, "h_zp": 0, "hidden_zp": 0,
             "gain": 1.0, "peephole": False}
    layer.update(kw)
    shape = [steps, batch, feats] if layer["time_major"] else [batch, steps, feats]
    layer["model"] = {"input": shape, "in_type": "int8", "out_type": "int8", "uint8_kernels": False}
    return _spec(shape, [layer], seed=seed)


def _conv16(shape, k, s=(1, 1), d=(1, 1), pad="SAME", out=8, act="NONE", seed=30):
    spec = _spec(shape, [{"op": "CONV_2D", "k": list(k), "s": list(s), "d": list(d), "pad": pad, "act": act,
                          "out": out, "bias": True}], seed=seed)
    spec.update(int16=True, in_type="int16", out_type="int16")
    return spec


# CONV_2D 16x8 (tvmgen_mk_conv16): VALID windows inside the input read their rows in place (KW * C even, DW = 1;
# dilation 2 down the rows); SAME padding mixes those with copied border windows over 6 channels; an odd KW * C
# (3x3 over 3 channels), stride 2 and an odd channel count copy every window; dilation across copies too
FC_CASES.update({
    "conv16_rows_in_place": (_conv16([1, 9, 20, 2], (3, 5), d=(2, 1), pad="VALID", out=8), "tvmgen_mk_conv16", 1),
    "conv16_same_mixed": (_conv16([1, 7, 9, 4], (3, 3), out=6, act="RELU", seed=31), "tvmgen_mk_conv16", 1),
    "conv16_odd_stride2": (_conv16([1, 9, 11, 3], (3, 3), s=(2, 2), out=5, seed=32), "tvmgen_mk_conv16", 1),
    "conv16_dilated_cols": (_conv16([1, 8, 12, 2], (2, 3), d=(1, 2), out=3, seed=33), "tvmgen_mk_conv16", 1),
})
CASES.update({name: case[0] for name, case in FC_CASES.items()})


# PAD / PADV2 of one-byte tensors (tvmgen_mk_pad, word-wise runs): whole pixels (no channel padding) with rows of
# 6 * 10 bytes; channel padding on uint8 with PADV2's constant; an int8 chain after a convolution
FC_CASES.update({
    "pad_whole_pixels": (_spec([1, 5, 7, 6], [{"op": "PAD", "pads": [[0, 0], [1, 2], [2, 1], [0, 0]], "value": 0.0}],
                               seed=40), "tvmgen_mk_pad", 0),
    "padv2_channels_uint8": (_spec([1, 4, 5, 3], [{"op": "PADV2", "pads": [[0, 0], [0, 1], [1, 0], [2, 3]],
                                                   "value": 0.5}], seed=41, in_type="uint8"), "tvmgen_mk_pad", 0),
    "pad_after_conv": (_spec([1, 6, 6, 3], [{"op": "CONV_2D", "k": [3, 3], "s": [1, 1], "d": [1, 1], "pad": "VALID",
                                             "act": "RELU", "out": 5, "bias": True},
                                            {"op": "PAD", "pads": [[0, 0], [2, 0], [0, 3], [1, 1]], "value": 0.0}],
                             seed=42), "tvmgen_mk_pad", 0),
})
CASES.update({name: case[0] for name, case in FC_CASES.items()})


def _maxp(k, s=(1, 1), pad="SAME", act="NONE"):
    return {"op": "MAX_POOL_2D", "k": list(k), "s": list(s), "pad": pad, "act": act}


# MAX_POOL_2D int8 (tvmgen_mk_maxpool, SSUB8 + SEL over four channels): clipped SAME windows over 10 channels
# (groups and a tail of 2) with a RELU6 clamp inside the range; then stride 2 VALID over 3 channels (tail only)
FC_CASES.update({
    "maxpool_borders_relu6": (_spec([1, 7, 9, 10], [_maxp((3, 3), act="RELU6"), _maxp((2, 2), s=(2, 2),
                                                                                        pad="VALID")],
                                    seed=43, scale=4.0, offset=1.0), "tvmgen_mk_maxpool", 0),
    "maxpool_c3_stride2": (_spec([1, 8, 8, 3], [_maxp((3, 2), s=(2, 2), act="RELU")], seed=44, offset=-0.5),
                           "tvmgen_mk_maxpool", 0),
})
CASES.update({name: case[0] for name, case in FC_CASES.items()})


# the integer LSTM's gate matrix-vector products two rows and four columns at a time (SMLAD on the M4), its
# int16 SaturatingRoundingDoublingHighMul in one line: an odd number of rows and columns % 4 = 3 (both tails),
# peephole, cell clip and a zero point; then mnist_lstm's 20 cells over 28 inputs, CIFG and a projection to 3
CASES.update({
    "lstm_odd_rows_and_columns": _lstm(2, 3, 7, 5, 20, peephole=True, cell_clip=3.0, hidden_zp=7, gain=3.0),
    "lstm_20_cells_28_inputs": _lstm(1, 6, 28, 20, 21, cifg=True, proj=3, h_zp=5, cell_log2=-11),
})


def _mk_calls(tar, fn):
    """The literal arguments of every call of microkernel `fn` in the generated kernels of an MLF tar."""
    import re
    import tarfile
    with tarfile.open(tar) as t:
        src = t.extractfile("codegen/host/src/fz_lib1.c").read().decode()
    return [[a.strip() for a in m.group(1).split(",")]
            for m in re.finditer(r"(?<!int32_t )\b%s\(([^;{]*)\);" % fn, src)]


def _run(name, target, tmp_path):
    spec = dict(CASES[name], microkernels=True)
    if name in DW3_S2:
        os.environ["TINYML_DW3"] = "2"
    o = fuzz.check(spec, str(tmp_path), target=target)
    assert o.built, (name, o)
    assert o.kind == "exact", (name, target, o)
    if name in FC_CASES:         # the kernel mode the case is there for really ran
        _, fn, bit = FC_CASES[name]
        calls = _mk_calls(os.path.join(str(tmp_path), "model.tar"), fn)
        assert calls and all(int(c[-1]) & bit for c in calls if bit), (name, calls)


def test_fuzzer_reaches_both_fully_connected_modes():
    """The fuzzer's FULLY_CONNECTED layers reach the per-tensor table (per-tensor weights) and, over its larger
    inputs, the in-place row (the paired kernel's bound fails: 128 * sum |w| of an odd output >= 2^23), judged on
    weights drawn and quantized as the fuzzer's are (normal, then int8 per channel to a maximum of 127)."""
    rs = np.random.RandomState(0)
    seen = set()
    for spec, layer, shape, out in _specs("FULLY_CONNECTED", 300, 23):
        if spec["uint8_kernels"]:
            continue
        k = int(np.prod(shape[1:]))
        if not spec["per_channel"]:
            seen.add("per-tensor")
            continue
        w = rs.randn(k, layer["out"])
        q = np.round(w / np.abs(w).max(0) * 127)
        seen.add("in place" if np.any(128 * np.abs(q[:, 1::2]).sum(0) >= 2 ** 23) else "paired")
    assert seen == {"per-tensor", "in place", "paired"}, seen


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_paths_bit_exact_on_host(name, tmp_path):
    _run(name, "host", tmp_path)


@pytest.mark.heavy
@pytest.mark.skipif(not HAVE_QEMU, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_paths_bit_exact_on_cortex_m4(name, tmp_path):
    _run(name, "cortex-m4", tmp_path)


def test_lstm_int16_doubling_high_mul_is_gemmlowps(tmp_path):
    """recurrent.h's one-line SaturatingRoundingDoublingHighMul on int16 (the LSTM gates' sigmoid and tanh are
    chains of it) against gemmlowp's definition, compiled by the host C compiler: every a against every fifth b
    and the edges (-32768, -1, 0, 1, 32767), the saturating a = b = -32768 among them."""
    import subprocess
    if not shutil.which("gcc"):
        pytest.skip("needs the host C compiler gcc")
    src = tmp_path / "srdhm.c"
    src.write_text(r'''
#include <stdio.h>
#include "recurrent.h"
static int16_t gemmlowp(int16_t a, int16_t b) {     /* fixedpoint.h SaturatingRoundingDoublingHighMul<int16_t> */
  int32_t ab, nudge;
  if (a == b && a == -32768) return 32767;
  ab = (int32_t)a * (int32_t)b;
  nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  return (int16_t)((ab + nudge) / (1 << 15));
}
int main(void) {
  static const int32_t edges[] = {-32768, -1, 0, 1, 32767};
  long bad = 0, n = 0;
  for (int32_t a = -32768; a <= 32767; a++) {
    for (int32_t b = -32768; b <= 32767; b += 5, n++) bad += tvmgen_rnn_srdhm16(a, b) != gemmlowp(a, b);
    for (int k = 0; k < 5; k++, n++) bad += tvmgen_rnn_srdhm16(a, edges[k]) != gemmlowp(a, edges[k]);
  }
  printf("%ld %ld\n", bad, n);
  return 0;
}
''')
    exe = tmp_path / "srdhm"
    subprocess.run(["gcc", "-O2", "-I", os.path.join(ROOT, "codegen", "lowering"), str(src), "-o", str(exe)],
                   check=True)
    bad, n = map(int, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split())
    assert n > 65536 * 13000 and bad == 0, (bad, n)


def test_fuzzer_reaches_the_16x8_conv_kernel_both_ways():
    """The fuzzer's 16x8 chains draw CONV_2D with TFLite's default int64 bias (tvmgen_mk_conv16), windows whose
    rows can be read in place (DW = 1, KW * C even) and windows that are copied."""
    r = random.Random(16)
    seen = set()
    for _ in range(200):
        spec = fuzz.random_spec(r, "CONV_2D", int16=True)
        if spec.get("bias32"):
            continue
        shape = list(spec["input"])
        for layer in spec["layers"]:
            if layer["op"] == "CONV_2D" and len(shape) == 4:
                rows = layer["d"][1] == 1 and layer["k"][1] * shape[3] % 2 == 0
                seen.add("rows in place" if rows else "copied windows")
                seen.add("padding" if layer["pad"] == "SAME" else "valid")
            shape = fuzz.layer_shape(spec, layer, shape)
    assert seen == {"rows in place", "copied windows", "padding", "valid"}, seen


def test_fuzzer_reaches_both_pad_kernel_paths():
    """The fuzzer's PAD / PADV2 layers on 4-D one-byte tensors reach tvmgen_mk_pad's whole-pixel rows (no channel
    padding) and its per-pixel runs (channel padding), on int8 and uint8."""
    seen = set()
    for op, seed in (("PAD", 40), ("PADV2", 41)):
        for spec, layer, shape, out in _specs(op, 120, seed):
            if len(shape) != 4:
                continue
            seen.add("per-pixel runs" if any(layer["pads"][3]) else "whole pixels")
            seen.add(spec["in_type"])
    assert {"per-pixel runs", "whole pixels", "int8", "uint8"} <= seen, seen


