"""Lower a full-int8 TFLite model (codegen.tflite_model.Model) to standalone C with Apache TVM.

Route (TVM 0.27: Relax + TIR, no relay/microTVM):

1. Every TFLite op becomes one TE compute in *integer* arithmetic that follows
   TFLite's reference kernels (int32 accumulation of (x - zp) * w + bias, then
   MultiplyByQuantizedMultiplier with double rounding, + output zero point, clamp
   to the fused activation range).  The computes are emitted into a Relax
   function with ``BlockBuilder.emit_te``; constants (weights, biases and the
   per-channel multiplier/shift tables) are Relax function parameters, so they
   stay int8/int32 arrays and are never folded to float.
2. Each PrimFunc is scheduled with ``tvm.s_tir.Schedule`` so that a kernel needs
   no temporary buffer, and for speed on small cores (Cortex-M4: see bench/mcu.py):
   * the input zero point is hoisted out of the convolution sums
     (sum((x - zp) * w) = sum(x * w) - zp * sum(w), zp * sum(w) folded into the bias
     constant; padded taps read zp so they cancel);
   * register tiles (pointwise: 2 pixels x 2 channels over groups of 4 input channels,
     one ``tvmgen_dot4`` = 2 SMLADs each; first conv: 2 pixels x 4 channels; depthwise:
     8 channels), the tile's reduction/epilogue loops unrolled so the accumulators are a
     few constant-indexed locals the C compiler keeps in registers;
   * a 32-bit requantization epilogue: the double rounding of MultiplyByQuantizedMultiplier
     as one 64-bit multiply-add and shifts, no 64-bit division, per-channel shift tables
     (right shift + rounding term) instead of per-element shift clamping, and a saturating
     clamp (``tvmgen_clamp``).  Everything stays bit-exact with TFLite's reference kernels.
3. Relax ``StaticPlanBlockMemory`` plans the intermediate tensors; its storages
   are laid out one after another in a single static workspace.
4. A TIR pass turns buffer parameters into plain pointer parameters, the TIR
   pipeline runs without MakePackedAPI, and the ``c`` target's code generator
   emits plain ``void f(int8_t* ...)`` functions; TVM include lines and
   ``TVM_DLL`` markers are stripped afterwards.

All tvm imports happen inside functions.
"""

import math
import re
import time

import numpy as np

from .tflite_model import ModelError

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t", "float32": "float"}
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


# ----------------------------------------------------------------------------------------------
# TFLite quantization helpers (pure Python, mirror tensorflow/lite/kernels/internal/quantization_util)

def round_half_away(x):
    """TfLiteRound / std::round: round half away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real):
    """QuantizeMultiplier(double) -> (int32 quantized_multiplier, int shift)."""
    if real == 0.0:
        return 0, 0
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
    qmin, qmax = _QRANGE[dtype]
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


def _padding(in_size, filt, stride, dilation, out_size):
    """ComputePaddingWithOffset: returns the top/left padding."""
    eff = (filt - 1) * dilation + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def _per_channel_multipliers(in_scale, w_scales, out_scale, n):
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

def _i32(v):
    from tvm import tirx
    return tirx.const(int(v), "int32")


def _i64(v):
    from tvm import tirx
    return tirx.const(int(v), "int64")


def _srdhm(a, b):
    """SaturatingRoundingDoublingHighMul(a, b) for int32 a, b.

    The saturating case (a == b == INT32_MIN) cannot occur here: quantized
    multipliers are always positive."""
    # gemmlowp: (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with truncating division.  For
    # ab >= 0 that is (ab + 2^30) >> 31; for ab < 0 the sum is negative and truncation equals
    # flooring after adding 2^31 - 1, i.e. (ab + 1 - 2^30 + 2^31 - 1) >> 31 = (ab + 2^30) >> 31
    # as well.  One arithmetic shift, no 64-bit division (a libgcc call on 32-bit MCUs).
    ab = a.astype("int64") * b.astype("int64")
    return ((ab + _i64(1 << 30)) >> _i64(31)).astype("int32")


def _rdbpot(x, exponent):
    """RoundingDivideByPOT(x, exponent) (arithmetic shift with round-half-away)."""
    from tvm import tirx
    if isinstance(exponent, int):
        if exponent == 0:
            return x
        mask = _i32((1 << exponent) - 1)
        threshold = tirx.Select(x < _i32(0), _i32((((1 << exponent) - 1) >> 1) + 1),
                                _i32(((1 << exponent) - 1) >> 1))
        return (x >> _i32(exponent)) + tirx.Select((x & mask) > threshold, _i32(1), _i32(0))
    e = exponent
    mask = ((tirx.const(1, "uint32") << e.astype("uint32"))
            - tirx.const(1, "uint32")).astype("int32")  # 0 <= e <= 31
    threshold = (mask >> _i32(1)) + tirx.Select(x < _i32(0), _i32(1), _i32(0))
    return (x >> e) + tirx.Select((x & mask) > threshold, _i32(1), _i32(0))


def _rdbpot_masked(x, exponent, mask):
    """RoundingDivideByPOT with mask = 2^exponent - 1 given: TFLite rounds up when
    (x & mask) > (mask >> 1) + (x < 0).  As t = (mask >> 1) - (x >> 31) - (x & mask) cannot
    overflow and is negative exactly then, the result is (x >> exponent) - (t >> 31): no
    compare, no branch (and nothing TVM's simplifier widens to int64)."""
    t = (mask >> _i32(1)) - (x >> _i32(31)) - (x & mask)
    return (x >> exponent) - (t >> _i32(31))


def _mbqm(x, mult, shift, shift_range=(-31, 30)):
    """MultiplyByQuantizedMultiplier(x, mult, shift) with TFLite's double rounding
    (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT).

    `shift` is a Python int or an int32 expression (a per-channel table load) whose values
    lie in `shift_range`; the shift amounts are clamped to that range so TVM's bound
    analysis sees sane ranges and no left-shift code is emitted when none is needed."""
    from tvm import tirx
    if isinstance(shift, int):
        left, right = max(shift, 0), max(-shift, 0)
        if left:
            x = x * _i32(1 << left)
        return _rdbpot(_srdhm(x, _i32(mult) if isinstance(mult, int) else mult), right)
    lo, hi = int(shift_range[0]), int(shift_range[1])
    if hi > 0:
        left = tirx.min(tirx.max(shift, _i32(0)), _i32(hi))
        x = x * (_i64(1) << left.astype("int64")).astype("int32")
    if lo < 0:
        right = tirx.min(tirx.max(_i32(0) - shift, _i32(0)), _i32(-lo))
        return _rdbpot(_srdhm(x, mult), right)
    return _srdhm(x, mult)


def _mbqm_single(x, mult, shift, shift_range=(-31, 30)):
    """MultiplyByQuantizedMultiplier with a single rounding (TFLITE_SINGLE_ROUNDING form):
    (x * mult + 2^(30 - shift)) >> (31 - shift), in int64."""
    from tvm import tirx
    if isinstance(shift, int):
        ts = 31 - shift
        return ((x.astype("int64") * _i64(mult) + _i64(1 << (ts - 1))) >> _i64(ts)).astype("int32")
    lo, hi = int(shift_range[0]), int(shift_range[1])
    ts = tirx.min(tirx.max(_i32(31) - shift, _i32(31 - hi)), _i32(31 - lo)).astype("int64")
    return ((x.astype("int64") * mult.astype("int64") + (_i64(1) << (ts - _i64(1))))
            >> ts).astype("int32")


def _requant(op_type):
    """Which MultiplyByQuantizedMultiplier rounding TF 2.21's BUILTIN_REF kernel uses for an
    op (measured against the interpreter)."""
    return _mbqm_single if op_type in _SINGLE_ROUNDING_OPS else _mbqm


# Measured with TF 2.21 BUILTIN_REF: CONV_2D / DEPTHWISE_CONV_2D / MEAN / QUANTIZE match the
# double-rounding form exactly (and differ with single rounding); per-channel
# FULLY_CONNECTED matches only the single-rounding form (x.4998 cases round down).
# ADD / RELU / RELU6 call the int32 MultiplyByQuantizedMultiplier(SmallerThanOneExp), double
# rounding in TF's default build; both forms matched BUILTIN_REF on tests/test_ops.py's data.
_SINGLE_ROUNDING_OPS = {"FULLY_CONNECTED"}


def _clamp_cast(v, lo, hi, dtype):
    from tvm import tirx
    return tirx.max(tirx.min(v, _i32(hi)), _i32(lo)).astype(dtype)


# ----------------------------------------------------------------------------------------------

class Lowered:
    """Everything mlf.py needs to write the C sources and metadata."""

    def __init__(self):
        self.constants = []      # [(c_name, np.ndarray)]
        self.kernels = []        # [(c_name, [c_param_type, ...])]
        self.kernel_source = ""  # C text of all kernels (lib1)
        self.calls = []          # [(kernel_c_name, [arg], out_nbytes); arg = ("input",)|("output",)|
                                 #  ("const", c_name)|("ws", offset)]
        self.copies = []         # [(dst arg, src arg, nbytes)] extra copies (rare)
        self.workspace_size = 0
        self.constants_size = 0
        self.ops = []            # metadata per TFLite op
        self.relax_text = ""
        self.tir_text = ""
        self.input = None
        self.output = None
        self.times = {}


def _sched_reduction(sch, n_spatial):
    """acc (reduction) + out (epilogue): put the epilogue inside the innermost spatial
    loop of the reduction and hoist the init, so acc becomes a single scalar."""
    acc = sch.get_sblock("acc")
    out = sch.get_sblock("out")
    loops = sch.get_loops(acc)
    sch.reverse_compute_at(out, loops[n_spatial - 1])
    loops = sch.get_loops(acc)
    if len(loops) > n_spatial:
        sch.decompose_reduction(acc, loops[n_spatial])


def _factor(n, choices):
    for c in choices:
        if n % c == 0:
            return c
    return 1


def _unroll_all(sch, loops):
    for lp in loops:
        sch.unroll(lp)


def _sched_tiled(sch, tiles, red, red_inner):
    """Register tiling: acc loops = [n, oh, ow, oc, *red]; `tiles` = [(loop index, factor)]
    splits spatial loops into outer/inner; the inner parts go below the reduction and are
    unrolled together with the epilogue, so the accumulators are a small constant-indexed
    local array that the C compiler keeps in registers."""
    acc = sch.get_sblock("acc")
    epilogue = []
    for name in ("biased", "high", "out"):
        try:
            epilogue.append(sch.get_sblock(name))
        except Exception:  # noqa: BLE001 (stage absent)
            pass
    loops = list(sch.get_loops(acc))
    sp, rl = loops[:4], loops[4:]
    outer, inner = list(sp), []
    for idx, fac in tiles:
        o, i = sch.split(sp[idx], factors=[None, fac])
        outer[idx] = o
        inner.append(i)
    r_outer, r_inner = [], []
    for k, lp in enumerate(rl):
        fac = red_inner.get(k)
        if fac:
            o, i = sch.split(lp, factors=[None, fac])
            r_outer.append(o)
            r_inner.append(i)
        elif k in red:
            r_inner.append(lp)
        else:
            r_outer.append(lp)
    sch.reorder(*outer, *r_outer, *r_inner, *inner)
    for blk in epilogue:
        sch.reverse_compute_at(blk, outer[-1])
    init = sch.decompose_reduction(acc, r_outer[0] if r_outer else r_inner[0])
    _unroll_all(sch, r_inner + inner)
    _unroll_all(sch, list(sch.get_loops(init))[4:])
    for blk in epilogue:
        _unroll_all(sch, list(sch.get_loops(blk))[4:])


def _sched_pointwise(sch, OW, OC, C, unroll, oc_tile=(2,)):
    pw = _factor(OW, (2,))
    oc = _factor(OC, oc_tile)
    u = _factor(C, unroll)
    tiles = [(2, pw)] if pw > 1 else []
    if oc > 1:
        tiles.append((3, oc))
    _sched_tiled(sch, tiles, set(), {0: u} if u > 1 else {})


def _sched_depthwise(sch, OC):
    """Depthwise: all taps unrolled, 8 channels per tile (one padding check per tap serves
    all of them)."""
    oc = _factor(OC, (8, 4, 2))
    _sched_tiled(sch, [(3, oc)] if oc > 1 else [], {0, 1}, {})


def _sched_conv(sch, OW, OC, taps):
    """General convolution (the first layer: few input channels): a 2-pixel x 4-channel
    register tile (each input value feeds 4 accumulators, each weight 2); small kernels
    are unrolled completely."""
    pw = _factor(OW, (2,))
    oc = _factor(OC, (4, 2))
    red = {0, 1, 2} if taps <= 32 else {2}
    tiles = ([(2, pw)] if pw > 1 else []) + ([(3, oc)] if oc > 1 else [])
    _sched_tiled(sch, tiles, red, {})


def _pool_window(x, geometry, reduce_fn, fill):
    """acc[n, oh, ow, c]: `reduce_fn` (te.max / te.sum) over the pool window of x in int32; a tap that falls in
    the padding reads `fill`, chosen so that it cannot change the result."""
    from tvm import te, tirx

    H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = geometry
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")

    def body(n, oh, ow, c):
        ih, iw = oh * sh + rh - pt, ow * sw + rw - pl
        xv = x[n, ih, iw, c].astype("int32")
        conds = ([ih >= 0, ih < H] if edge_h else []) + ([iw >= 0, iw < W] if edge_w else [])
        if conds:
            xv = tirx.if_then_else(tirx.all(*conds), xv, _i32(fill))
        return reduce_fn(xv, axis=[rh, rw])

    return te.compute((1, OH, OW, C), body, name="acc")


class _Builder:
    def __init__(self, model, model_name):
        from tvm import relax
        self.relax = relax
        self.m = model
        self.name = model_name
        self.params = []          # relax vars for constants (after the input)
        self.param_data = {}      # relax var -> (c_name, np array)
        self.values = {}          # tflite tensor index -> relax expr
        self.scheds = {}          # kernel name -> schedule fn
        self.ops_meta = []
        self.bb = None

    # constants --------------------------------------------------------------
    def const(self, arr, hint):
        relax = self.relax
        arr = np.ascontiguousarray(arr)
        cname = "tvmgen_%s_c%d_%s" % (self.name, len(self.params), hint)
        v = relax.Var(cname, relax.TensorType(tuple(int(d) for d in arr.shape), str(arr.dtype)))
        self.params.append(v)
        self.param_data[v] = (cname, arr)
        return v

    def tensor_const(self, ti, hint):
        t = self.m.tensors[ti]
        if ti not in self.values:
            self.values[ti] = self.const(t.data, hint)
        return self.values[ti]

    def kname(self, op):
        return "tvmgen_%s_%s_%d" % (self.name, op.type.lower(), op.index)

    def emit(self, op, fn, args, sched=None):
        name = self.kname(op)
        v = self.bb.emit_te(fn, *args, primfunc_name_hint=name)
        if sched is not None:
            self.scheds[name] = sched
        return v

    # ops ------------------------------------------------------------------
    def op_quantize(self, op):
        from tvm import te
        m = self.m
        rq = _requant(op.type)
        ti, to = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
        if ti.dtype not in _QRANGE:
            m.fail("QUANTIZE (op #%d) from %s is not supported." % (op.index, ti.dtype))
        eff = float(np.float32(ti.scale[0])) / float(np.float32(to.scale[0]))
        mult, shift = quantize_multiplier(eff)
        izp, ozp = int(ti.zero_point[0]), int(to.zero_point[0])
        lo, hi = _QRANGE[to.dtype]
        odt = to.dtype

        # equal scales (e.g. uint8 -> int8 input): MultiplyByQuantizedMultiplier(v, 2^30, 1)
        # = SRDHM(2v, 2^30) = v exactly, so only the zero points move
        identity = rq is _mbqm and (mult, shift) == (1 << 30, 1)

        def value(v):
            if identity:
                return v + _i32(ozp - izp)
            return rq(v - _i32(izp), mult, shift) + _i32(ozp)

        def f(x):
            return te.compute(
                x.shape, lambda *i: _clamp_cast(value(x(*i).astype("int32")), lo, hi, odt),
                name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]])
        return 0

    def _conv_common(self, op, depthwise):
        from tvm import te, tirx
        m = self.m
        rq = _requant(op.type)
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
        pt = _padding(H, KH, sh, dh, OH) if opt["padding"] == "SAME" else 0
        pl = _padding(W, KW, sw, dw, OW) if opt["padding"] == "SAME" else 0
        izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
        lo, hi = activation_range(opt["activation"], o_t.scale[0], ozp, o_t.dtype)
        mult, shift = _per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], OC)
        odt = o_t.dtype
        hint = "dw" if depthwise else "conv"
        srange = (int(shift.min()), int(shift.max()))
        # Zero-point term hoisted out of the reduction: sum((x - zp) * w) = sum(x * w) - zp * sum(w)
        # (exact in int32: TFLite's own accumulator holds the same value).  Padded taps read zp
        # instead of 0 so that they cancel as well; zp * sum(w) is folded into the bias constant.
        wd = np.asarray(w_t.data).astype(np.int64)
        sumw = wd[0].reshape(-1, OC).sum(0) if depthwise else wd.reshape(OC, -1).sum(1)
        bias = (np.asarray(m.tensors[b_i].data).astype(np.int64).reshape(OC) if b_i >= 0
                else np.zeros(OC, np.int64))
        bias = bias - izp * sumw
        if np.abs(bias).max(initial=0) >= 2 ** 31:
            m.fail("%s (op #%d): folded bias overflows int32." % (op.type, op.index))
        pointwise = (not depthwise and KH == 1 and KW == 1 and sh == 1 and sw == 1
                     and pt == 0 and pl == 0)
        # 1x1 convolutions over int8 channels in groups of four: one tvmgen_dot4 call (two
        # SMLADs on a DSP core, see KERNEL_PREAMBLE) per group of four MACs.
        dot4 = pointwise and C % 4 == 0 and x_t.dtype == "int8"

        args = [self.values[op.inputs[0]], self.tensor_const(op.inputs[1], hint + "_w"),
                self.const(bias.astype(np.int32), hint + "_b"),
                self.const(mult, hint + "_mult")]
        if rq is _mbqm:
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
            args.append(self.const(rsh.astype(np.int8), hint + "_rshift"))
            if fast_round:
                args.append(self.const((1 << (rsh - 1)).astype(np.int32), hint + "_rhalf"))
            else:
                args.append(self.const(((1 << rsh) - 1).astype(np.int32), hint + "_rmask"))
            if shift.max() > 0:
                args.append(self.const(lsh.astype(np.int8), hint + "_lshift"))
        else:
            args.append(self.const(shift, hint + "_shift"))

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
                    xv = tirx.if_then_else(tirx.all(*conds), xv, _i32(izp))
                return te.sum(xv * wv.astype("int32"), axis=axes)

            shape = (1, OH, OW, OC)
            acc = te.compute(shape, body, name="acc")
            if rq is not _mbqm:
                return te.compute(shape, lambda n, oh, ow, oc: _clamp_cast(
                    rq(acc[n, oh, ow, oc] + b[oc], mu[oc], tabs[0][oc], srange) + _i32(ozp),
                    lo, hi, odt), name="out")
            biased = te.compute(shape, lambda n, oh, ow, oc: acc[n, oh, ow, oc] + b[oc],
                                name="biased")

            rs, rm = tabs[0], tabs[1]

            def high(n, oh, ow, oc):
                v = biased[n, oh, ow, oc]
                if len(tabs) > 2:
                    v = v << tabs[2][oc].astype("int32")
                return _srdhm(v, mu[oc])
            hm = te.compute(shape, high, name="high")

            def epi(n, oh, ow, oc):
                v = hm[n, oh, ow, oc]
                if fast_round:  # exact: |v| + 2^(r-1) < 2^31 (checked above), r >= 1
                    v = (v + rm[oc] + (v >> _i32(31))) >> rs[oc].astype("int32")
                else:
                    v = _rdbpot_masked(v, rs[oc].astype("int32"), rm[oc])
                # SSAT/USAT for a full-range clamp (gcc turns the min/max pair into branches)
                return tirx.call_extern("int32", "tvmgen_clamp", v + _i32(ozp), _i32(lo),
                                        _i32(hi)).astype(odt)

            return te.compute(shape, epi, name="out")

        if pointwise:
            sched = lambda s: _sched_pointwise(s, OW, OC, C // 4 if dot4 else C,  # noqa: E731
                                               (1,) if dot4 else (4, 2),
                                               (2,) if dot4 else (4, 2))
        elif depthwise:
            sched = lambda s: _sched_depthwise(s, OC)  # noqa: E731
        else:
            sched = lambda s: _sched_conv(s, OW, OC, KH * KW * C)  # noqa: E731
        self.values[op.outputs[0]] = self.emit(op, f, args, sched)
        return OH * OW * OC * KH * KW * (1 if depthwise else C)

    def op_conv_2d(self, op):
        return self._conv_common(op, False)

    def op_depthwise_conv_2d(self, op):
        return self._conv_common(op, True)

    def op_fully_connected(self, op):
        from tvm import te
        m = self.m
        rq = _requant(op.type)
        relax = self.relax
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
            mult, shift = _per_channel_multipliers(x_t.scale[0], w_t.scale, o_t.scale[0], U)
        else:  # GetQuantizedConvolutionMultipler: float32 product, then double
            prod = float(np.float32(x_t.scale[0]) * np.float32(w_t.scale[0]))
            mu, sh = quantize_multiplier(prod / float(np.float32(o_t.scale[0])))
            mult, shift = np.full(U, mu, np.int32), np.full(U, sh, np.int32)
        odt = o_t.dtype
        has_bias = b_i >= 0
        srange = (int(shift.min()), int(shift.max()))
        x = self.values[op.inputs[0]]
        if tuple(x_t.shape) != (B, K):
            x = self.bb.emit(relax.op.reshape(x, (B, K)))
        args = [x, self.tensor_const(op.inputs[1], "fc_w")]
        if has_bias:
            args.append(self.tensor_const(b_i, "fc_b"))
        args += [self.const(mult, "fc_mult"), self.const(shift, "fc_shift")]
        out_shape = tuple(o_t.shape)

        def f(x, w, *rest):
            if has_bias:
                b, mu, shf = rest
            else:
                b = None
                mu, shf = rest
            rk = te.reduce_axis((0, K), "rk")
            acc = te.compute(
                (B, U),
                lambda i, u: te.sum((x[i, rk].astype("int32") - _i32(izp))
                                    * (w[u, rk].astype("int32") - _i32(wzp)), axis=rk),
                name="acc")

            def epi(i, u):
                a = acc[i, u]
                if b is not None:
                    a = a + b[u]
                return _clamp_cast(rq(a, mu[u], shf[u], srange) + _i32(ozp), lo, hi, odt)

            return te.compute((B, U), epi, name="out")

        y = self.emit(op, f, args, lambda s: _sched_reduction(s, 2))
        if out_shape != (B, U):
            y = self.bb.emit(relax.op.reshape(y, out_shape))
        self.values[op.outputs[0]] = y
        return B * U * K

    def op_mean(self, op):
        """MEAN over H, W: int32 sum of (x - zp), MultiplyByQuantizedMultiplier with
        multiplier in_scale / (out_scale * count), + out zp (bit-exact with TF 2.21)."""
        from tvm import te
        m = self.m
        rq = _requant(op.type)
        x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
        axis_t = m.tensors[op.inputs[1]]
        axes = sorted(int(a) % len(x_t.shape) for a in np.asarray(axis_t.data).ravel())
        if len(x_t.shape) != 4 or axes != [1, 2]:
            m.fail("MEAN (op #%d) is only supported over H and W of a 4-D tensor (axes %s)."
                   % (op.index, axes))
        _, H, W, C = x_t.shape
        n = H * W
        izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
        # TF 2.21's BUILTIN_REF matches a single MultiplyByQuantizedMultiplier with the
        # element count folded into the multiplier (in_scale / out_scale / n, in double);
        # the older reference_integer_ops::Mean (MBQM by in/out scale, then a rounded
        # division by n) is off by one LSB on ~1% of outputs (measured).
        eff = float(np.float32(x_t.scale[0])) / float(np.float32(o_t.scale[0])) / n
        mult, shift = quantize_multiplier(eff)
        lo, hi = _QRANGE[o_t.dtype]
        odt = o_t.dtype
        oshape = (1, 1, 1, C)
        final_shape = tuple(o_t.shape)

        def f(x):
            rh = te.reduce_axis((0, H), "rh")
            rw = te.reduce_axis((0, W), "rw")
            acc = te.compute(oshape, lambda b, i, j, c: te.sum(
                x[b, rh, rw, c].astype("int32") - _i32(izp), axis=[rh, rw]), name="acc")

            def epi(b, i, j, c):
                v = rq(acc[b, i, j, c], mult, shift)
                return _clamp_cast(v + _i32(ozp), lo, hi, odt)

            return te.compute(oshape, epi, name="out")

        y = self.emit(op, f, [self.values[op.inputs[0]]], lambda s: _sched_reduction(s, 4))
        if final_shape != oshape:
            y = self.bb.emit(self.relax.op.reshape(y, final_shape))
        self.values[op.outputs[0]] = y
        return x_t.size

    def op_reshape(self, op):
        o_t = self.m.tensors[op.outputs[0]]
        self.values[op.outputs[0]] = self.bb.emit(
            self.relax.op.reshape(self.values[op.inputs[0]], tuple(o_t.shape)))
        return 0

    # pooling, elementwise ----------------------------------------------------
    def _pool_geometry(self, op):
        m = self.m
        opt = op.options
        x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
        _, H, W, C = x_t.shape
        _, OH, OW, OC = o_t.shape
        KH, KW = int(opt["filter_h"]), int(opt["filter_w"])
        sh, sw = int(opt["stride_h"]), int(opt["stride_w"])
        pt = _padding(H, KH, sh, 1, OH) if opt["padding"] == "SAME" else 0
        pl = _padding(W, KW, sw, 1, OW) if opt["padding"] == "SAME" else 0
        # do the taps ever leave the input?  (then each tap gets a bounds check)
        edge_h = bool(pt or sh * (OH - 1) + KH - 1 - pt >= H)
        edge_w = bool(pl or sw * (OW - 1) + KW - 1 - pl >= W)
        return x_t, o_t, (H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w)

    def op_max_pool_2d(self, op):
        """reference_integer_ops::MaxPool: max over the in-bounds taps of the window, then the
        fused activation clamp (input and output share scale and zero point)."""
        from tvm import te
        x_t, o_t, g = self._pool_geometry(op)
        H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = g
        lo, hi = activation_range(op.options["activation"], o_t.scale[0],
                                  int(o_t.zero_point[0]), o_t.dtype)
        qmin = _QRANGE[x_t.dtype][0]
        odt = o_t.dtype

        def f(x):
            # an out-of-bounds tap reads the lowest value: it never wins
            acc = _pool_window(x, g, te.max, qmin)
            return te.compute((1, OH, OW, C), lambda *i: _clamp_cast(acc(*i), lo, hi, odt),
                              name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]],
                                               lambda s: _sched_reduction(s, 4))
        return OH * OW * C * KH * KW

    def op_average_pool_2d(self, op):
        """reference_integer_ops::AveragePool: int32 sum over the in-bounds taps only, divided
        by their count with rounding half away from zero ((acc +- count / 2) / count, C
        truncating division), then the fused activation clamp."""
        from tvm import te, tirx
        x_t, o_t, g = self._pool_geometry(op)
        H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, edge_h, edge_w = g
        lo, hi = activation_range(op.options["activation"], o_t.scale[0],
                                  int(o_t.zero_point[0]), o_t.dtype)
        odt = o_t.dtype

        def extents(n_out, stride, pad, K, size):
            # in-bounds taps along one axis for each output position
            return [min(K, size - (o * stride - pad)) - max(0, pad - o * stride)
                    for o in range(n_out)]

        def extent(o, stride, pad, K, size):
            origin = o * stride - pad
            return tirx.min(K, size - origin) - tirx.max(0, 0 - origin)

        eh, ew = extents(OH, sh, pt, KH, H), extents(OW, sw, pl, KW, W)

        def rounded_div(a, cnt):
            # (a > 0 ? a + cnt / 2 : a - cnt / 2) / cnt, C truncating division by a constant
            # (the count takes only a few values: one division per value, picked by Select,
            # keeps everything in 32 bits and lets the C compiler use a multiply)
            half = cnt // 2
            return tirx.truncdiv(a + tirx.Select(a > _i32(0), _i32(half), _i32(-half)),
                                 _i32(cnt))

        def by_count(a, oh, ow):
            hv, wv = sorted(set(eh)), sorted(set(ew))
            ehx = extent(oh, sh, pt, KH, H) if len(hv) > 1 else None
            ewx = extent(ow, sw, pl, KW, W) if len(wv) > 1 else None

            def over_w(h):
                v = rounded_div(a, h * wv[-1])
                for w in reversed(wv[:-1]):
                    v = tirx.Select(ewx == w, rounded_div(a, h * w), v)
                return v
            v = over_w(hv[-1])
            for h in reversed(hv[:-1]):
                v = tirx.Select(ehx == h, over_w(h), v)
            return v

        def f(x):
            acc = _pool_window(x, g, te.sum, 0)      # padding taps add nothing; by_count divides by real taps

            def epi(n, oh, ow, c):
                return _clamp_cast(by_count(acc[n, oh, ow, c], oh, ow), lo, hi, odt)

            return te.compute((1, OH, OW, C), epi, name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]],
                                               lambda s: _sched_reduction(s, 4))
        return OH * OW * C * KH * KW

    def _operand(self, ti):
        t = self.m.tensors[ti]
        if ti not in self.values and t.is_const:
            return self.tensor_const(ti, "addend")
        return self.values[ti]

    def op_add(self, op):
        """reference_integer_ops::Add (and its 4-D broadcast): both inputs minus their zero
        points, shifted left by 20, scaled by in_scale / (2 * max in_scale) with
        MultiplyByQuantizedMultiplierSmallerThanOneExp, summed, scaled by
        2 * max in_scale / (2^20 * out_scale), + out zero point, activation clamp."""
        from tvm import te
        m = self.m
        rq = _requant(op.type)
        a_t, b_t = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]]
        o_t = m.tensors[op.outputs[0]]
        oshape = tuple(o_t.shape)
        nd = len(oshape)
        left_shift = 20
        sa, sb, so = (np.float32(a_t.scale[0]), np.float32(b_t.scale[0]),
                      np.float32(o_t.scale[0]))
        twice_max = float(np.float32(2) * max(sa, sb))
        ma, sha = quantize_multiplier(float(sa) / twice_max)
        mb, shb = quantize_multiplier(float(sb) / twice_max)
        mo, sho = quantize_multiplier(twice_max / float(np.float32(1 << left_shift) * so))
        if max(sha, shb, sho) > 0:
            m.fail("ADD (op #%d): scale ratio out of range for TFLite's quantized add."
                   % op.index)
        azp, bzp, ozp = (int(a_t.zero_point[0]), int(b_t.zero_point[0]),
                         int(o_t.zero_point[0]))
        lo, hi = activation_range(op.options["activation"], so, ozp, o_t.dtype)
        odt = o_t.dtype

        def index(t, i):
            # numpy broadcasting: align on the right, size-1 dims read element 0
            sh = t.shape
            r = len(sh)
            return [i[nd - r + k] if sh[k] != 1 else 0 for k in range(r)]

        def f(a, b):
            def body(*i):
                va = (a(*index(a_t, i)).astype("int32") - _i32(azp)) * _i32(1 << left_shift)
                vb = (b(*index(b_t, i)).astype("int32") - _i32(bzp)) * _i32(1 << left_shift)
                s = rq(va, ma, sha) + rq(vb, mb, shb)
                return _clamp_cast(rq(s, mo, sho) + _i32(ozp), lo, hi, odt)
            return te.compute(oshape, body, name="out")

        self.values[op.outputs[0]] = self.emit(
            op, f, [self._operand(op.inputs[0]), self._operand(op.inputs[1])])
        return o_t.size

    def _relu_x(self, op, act):
        """Standalone RELU / RELU6 (TFLite QuantizedReluX + reference ReluX): out_zp +
        MultiplyByQuantizedMultiplier(x - in_zp, in_scale / out_scale), clamped to
        [max(qmin, out_zp), qmax] (RELU) or [.., min(qmax, out_zp + round(6 / out_scale))]."""
        from tvm import te
        m = self.m
        rq = _requant(op.type)
        x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
        mult, shift = quantize_multiplier(float(np.float32(x_t.scale[0]))
                                          / float(np.float32(o_t.scale[0])))
        izp, ozp = int(x_t.zero_point[0]), int(o_t.zero_point[0])
        lo, hi = activation_range(act, o_t.scale[0], ozp, o_t.dtype)
        odt = o_t.dtype

        def f(x):
            return te.compute(x.shape, lambda *i: _clamp_cast(
                rq(x(*i).astype("int32") - _i32(izp), mult, shift) + _i32(ozp), lo, hi, odt),
                name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]])
        return 0

    def op_relu(self, op):
        return self._relu_x(op, "RELU")

    def op_relu6(self, op):
        return self._relu_x(op, "RELU6")

    def op_dequantize(self, op):
        """DEQUANTIZE to float32 (only as the model's last op, see tflite_model): reference
        Dequantize computes float(double(scale) * (x - zp)); that double product is exact
        (24-bit scale times a 9-bit integer), so one float32 multiply rounds identically."""
        from tvm import te, tirx
        m = self.m
        x_t = m.tensors[op.inputs[0]]
        scale = np.float32(x_t.scale[0])
        zp = int(x_t.zero_point[0])

        def f(x):
            return te.compute(x.shape, lambda *i: (x(*i).astype("int32") - _i32(zp)).astype(
                "float32") * tirx.const(float(scale), "float32"), name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]])
        return 0

    def op_softmax(self, op):
        """Bit-exact int8/uint8 softmax: TFLite's reference quantized Softmax, i.e. gemmlowp
        fixed point (input diff scaled to Q5.26, exp_on_negative_values, sum in Q12.19,
        reciprocal by Newton-Raphson, output scale 1/256)."""
        from tvm import te, tirx
        m = self.m
        x_t, o_t = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
        shape = tuple(x_t.shape)
        D = shape[-1]
        nd = len(shape)
        omin = _QRANGE[o_t.dtype][0]
        if (float(o_t.scale[0]) != 1.0 / 256 or int(o_t.zero_point[0]) != omin
                or x_t.dtype != o_t.dtype):
            m.fail("SOFTMAX (op #%d) needs output scale 1/256 and zero point %d (TFLite's "
                   "quantized softmax); got %g / %d." % (op.index, omin, float(o_t.scale[0]),
                                                          int(o_t.zero_point[0])))
        mult, lshift, diff_min = softmax_params(float(op.options.get("beta", 1.0)),
                                                float(x_t.scale[0]))
        odt = o_t.dtype
        lo, hi = _QRANGE[odt]

        quarter = 1 << 24  # 1/4 in Q5.26
        barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                  (2, 39332535), (3, 720401), (4, 242))
        rows = shape[:-1]
        names = {"row": [], "sum": [], "out": []}
        INT_MAX = _i32(2 ** 31 - 1)

        # Every intermediate is its own TE stage; the schedule moves each one into the
        # innermost loop of its consumer, so it becomes a one-element local (a scalar).
        # (Nested tirx.Let expressions would be cheaper to write, but TVM's arithmetic
        # simplifier substitutes let-bound values and blows the expression up.)
        def f(x):
            rd = te.reduce_axis((0, D), "rd")
            rowmax = te.compute(rows, lambda *i: te.max(
                x(*i, rd).astype("int32"), axis=rd), name="rowmax")

            def chain(tag):
                def S(name, fn):
                    names[tag].append(tag + "_" + name)
                    return te.compute(shape, fn, name=tag + "_" + name)
                d = S("d", lambda *i: x(*i).astype("int32") - rowmax(*i[:-1]))
                # MultiplyByQuantizedMultiplierGreaterThanOne -> Q5.26
                sd = S("sd", lambda *i: _srdhm(d(*i) * _i32(1 << lshift), _i32(mult)))
                # exp_on_negative_values
                mq = S("mq", lambda *i: (sd(*i) & _i32(quarter - 1)) - _i32(quarter))
                xe = S("xe", lambda *i: mq(*i) * _i32(32) + _i32(1 << 28))
                x2 = S("x2", lambda *i: _srdhm(xe(*i), xe(*i)))
                x3 = S("x3", lambda *i: _srdhm(x2(*i), xe(*i)))
                x4q = S("x4q", lambda *i: _rdbpot(_srdhm(x2(*i), x2(*i)), 2))
                poly = S("poly", lambda *i: _rdbpot(
                    _srdhm(x4q(*i) + x3(*i), _i32(715827883)) + x2(*i), 1))
                e = S("e0", lambda *i: _i32(1895147668)
                      + _srdhm(_i32(1895147668), xe(*i) + poly(*i)))
                def barrel_step(e, bit, mul):
                    return lambda *i: tirx.Select(
                        ((mq(*i) - sd(*i)) & _i32(bit)) != _i32(0),
                        _srdhm(e(*i), _i32(mul)), e(*i))
                for k, (exponent, mul) in enumerate(barrel):
                    e = S("b%d" % k, barrel_step(e, 1 << (26 + exponent), mul))
                e_last = e
                ex = S("exp", lambda *i: tirx.Select(sd(*i) == _i32(0), INT_MAX, e_last(*i)))
                return d, ex

            ds, exs = chain("sum")
            rd2 = te.reduce_axis((0, D), "rd2")
            rowsum = te.compute(rows, lambda *i: te.sum(tirx.Select(
                ds(*i, rd2) >= _i32(diff_min), _rdbpot(exs(*i, rd2), 12), _i32(0)),
                axis=rd2), name="rowsum")

            def R(name, fn):
                names["row"].append("row_" + name)
                return te.compute(rows, fn, name="row_" + name)
            clz = R("clz", lambda *i: _clz_positive(rowsum(*i)))
            # GetReciprocal: shifted_sum_minus_one, then one_over_one_plus_x_for_x_in_0_1
            hd = R("hd", lambda *i: _half_sum_one(
                ((rowsum(*i).astype("int64") << clz(*i).astype("int64"))
                 - _i64(1 << 31)).astype("int32")))
            nr = R("nr0", lambda *i: _i32(1515870810) + _srdhm(hd(*i), _i32(-1010580540)))
            def newton(nr):
                return lambda *i: nr(*i) + _sat_mul_pot(_srdhm(
                    nr(*i), _i32(1 << 29) - _srdhm(hd(*i), nr(*i))), 2)
            for k in range(3):
                nr = R("nr%d" % (k + 1), newton(nr))
            nr_last = nr
            scale = R("scale", lambda *i: _sat_mul_pot(nr_last(*i), 1))

            do, exo = chain("out")

            def epi(*i):
                # num_bits_over_unit = 12 - clz; shift = num_bits_over_unit + 31 - 8
                # TFLite checks 0 <= exponent <= 31; the explicit clamp also gives TVM's
                # bound analysis a sane range (without it, it wrongly drops the final clamp).
                exponent = tirx.min(tirx.max(_i32(12 + 31 - 8) - clz(*i[:-1]), _i32(0)),
                                    _i32(31))
                unsat = _rdbpot(_srdhm(scale(*i[:-1]), exo(*i)), exponent)
                return tirx.Select(do(*i) >= _i32(diff_min),
                                   _clamp_cast(unsat + _i32(omin), lo, hi, odt),
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
            for b in ("rowmax", "rowsum"):
                bl = sch.get_loops(sch.get_sblock(b))
                sch.decompose_reduction(sch.get_sblock(b), bl[nd - 1])

        self.values[op.outputs[0]] = self.emit(op, f, [self.values[op.inputs[0]]], sched)
        return x_t.size


def _half_sum_one(v):
    """gemmlowp RoundingHalfSum(v, One) for Q0.31."""
    from tvm import tirx
    s = v.astype("int64") + _i64(2 ** 31 - 1)
    return tirx.truncdiv(s + tirx.Select(s >= _i64(0), _i64(1), _i64(-1)),
                         _i64(2)).astype("int32")


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
    return tirx.Select(x > _i32(th), _i32(2 ** 31 - 1),
                       tirx.Select(x < _i32(-th), _i32(-2 ** 31 + 1) - _i32(1),
                                   x * _i32(1 << e)))


def _clz_positive(v):
    """Count leading zeros of a positive int32 (as uint32)."""
    from tvm import tirx
    n = _i32(0)
    for k in range(31, -1, -1):
        n = n + tirx.Select(v < _i32(2 ** k) if k < 31 else v >= _i32(0), _i32(1), _i32(0))
    return n


def _to_pointer_params(func):
    """Buffer parameters -> pointer parameters bound by DeclBuffer, so that the C
    codegen emits a plain C function instead of a packed-API one."""
    from tvm import tirx
    from tvm.ir import PointerType
    params, decls = [], []
    for p in func.params:
        if isinstance(p.ty, tirx.buffer.BufferType):
            ptr = tirx.Var(p.name, PointerType(p.ty.dtype))
            params.append(ptr)
            decls.append((p, ptr))
        else:
            params.append(p)
    body = func.body
    for p, ptr in reversed(decls):
        body = tirx.DeclBuffer(p, body, data=ptr)
    return tirx.PrimFunc(params, body, func.ret_type, func.attrs)


def _tir_passes():
    """The s_tir default lowering minus GPU-only passes, MakePackedAPI and the slow
    RemoveNoOp/HoistIfThenElse (they change nothing for these kernels)."""
    import tvm
    from tvm import tirx
    from tvm.s_tir import transform as st
    return tvm.transform.Sequential([
        st.CanonicalizeLoop(),
        st.LowerInitBlock(),
        st.PlanAndUpdateBufferAllocationLocation(),
        st.ConvertBlocksToOpaque(),
        st.CompactBufferAllocation(),
        st.LowerMatchBuffer(),
        st.StmtSimplify(),
        st.LowerOpaqueBlock(),
        tirx.transform.FlattenBuffer(),
        tirx.transform.UnrollLoop(),
        tirx.transform.NarrowDataType(32),
        tirx.transform.StorageRewrite(),
        tirx.transform.StmtSimplify(),
        st.RewriteUnsafeSelect(),
        tirx.transform.CommonSubexprElim(),
    ])


# Helpers the kernels call (prepended to the kernel source when used).  tvmgen_dot4acc adds
# the four int8 x int8 products of two 4-byte groups to an int32 accumulator: with the
# Armv7E-M DSP extension that is two SXTB16 pairs and two SMLADs (the SXTB16 of a shared
# operand is computed once by the compiler for a register tile); elsewhere plain C.  Both are
# exact: every partial sum fits int32 like TFLite's own accumulator.  tvmgen_clamp is the
# activation clamp, a single SSAT/USAT for the full int8/uint8 range where available.
KERNEL_PREAMBLE = r"""#include <string.h>
#if (defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP) || \
    (defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif

static inline int32_t tvmgen_ld4(const int8_t* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t tvmgen_dot4acc(int32_t acc, const int8_t* a, const int8_t* b) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  uint32_t x = (uint32_t)tvmgen_ld4(a), y = (uint32_t)tvmgen_ld4(b);
  int32_t xo, yo;
  /* SXTB16 with ROR #8 (bytes 1 and 3) in one instruction; no ACLE intrinsic for it */
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(xo) : "r"(x));
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(yo) : "r"(y));
  acc = __smlad(__sxtb16((int32_t)x), __sxtb16((int32_t)y), acc);
  return __smlad(xo, yo, acc);
#else
  return acc + (int32_t)a[0] * b[0] + (int32_t)a[1] * b[1] + (int32_t)a[2] * b[2]
         + (int32_t)a[3] * b[3];
#endif
}

static inline int32_t tvmgen_dot4(const int8_t* a, const int8_t* b) {
  return tvmgen_dot4acc(0, a, b);
}

/* min(max(v, lo), hi); lo and hi are constants after inlining */
static inline int32_t tvmgen_clamp(int32_t v, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
  if (lo == -128 && hi == 127) return __ssat(v, 8);
  if (lo == 0 && hi == 255) return (int32_t)__usat(v, 8);
#endif
  return v < lo ? lo : (v > hi ? hi : v);
}
"""

_DOT4_ACC = re.compile(r"^(\s*)(\w+\[\d+\]) = \(\2 \+ (tvmgen_dot4)\((.*)\)\);$",
                       re.M)


def _fuse_dot4(text):
    """`acc[k] = (acc[k] + tvmgen_dot4(a, b));` -> `acc[k] = tvmgen_dot4acc(acc[k], a, b);`
    (so the accumulation is the SMLAD itself instead of an SMUAD plus an add)."""
    return _DOT4_ACC.sub(r"\1\2 = \3acc(\2, \4);", text)


def _strip_tvm(src):
    """Drop the TVM runtime includes / markers from the C codegen output."""
    out = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith('#include "tvm/') or "__tvm_ffi__library_ctx" in s:
            continue
        # libm prototypes the codegen repeats (math.h declares them; avr-libc defines
        # some of them as macros, which makes these lines fail to compile)
        if re.match(r"^(float|double) \w+\((float|double)(, (float|double))*\);$", s):
            continue
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"\bTVM_DLL\s+", "", text)
    text = re.sub(r"#ifdef __cplusplus\s*\nextern \"C\"\s*\n#endif\s*\n", "", text)
    return text


def lower(model, model_name="default"):
    """Lower `model` to C. Returns a `Lowered`. Raises ModelError on failure."""
    try:
        return _lower(model, model_name)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError("%s: code generation failed (%s: %s). The model probably uses an "
                         "op configuration this generator does not handle."
                         % (model.path, type(e).__name__, str(e).strip().splitlines()[-1]
                            if str(e).strip() else "")) from e


def _float_output_view(t):
    """A float32 model output (after DEQUANTIZE) carries no quantization parameters; the
    metadata and header describe it as scale 1, zero point 0 (value = 1 * (x - 0))."""
    if t.is_quantized:
        return t
    from .tflite_model import Tensor
    return Tensor(t.index, t.name, t.shape, t.shape_signature, t.dtype,
                  np.ones((1,), np.float32), np.zeros((1,), np.int64), 0, t.data)


def _lower(model, model_name):
    import tvm
    from tvm import relax, tirx
    import tvm.s_tir as s_tir
    from tvm.target import Target

    lw = Lowered()
    t0 = time.time()
    b = _Builder(model, model_name)
    m = model
    in_t, out_t = m.inputs[0], m.outputs[0]
    lw.input, lw.output = in_t, _float_output_view(out_t)
    x = relax.Var("input", relax.TensorType(tuple(in_t.shape), in_t.dtype))
    bb = relax.BlockBuilder()
    b.bb = bb
    b.values[in_t.index] = x
    # Constants become parameters; their list is only complete after the ops are emitted,
    # so the parameter list is given at emit_func_output.
    with bb.function("main"):
        with bb.dataflow():
            for op in m.ops:
                fn = getattr(b, "op_" + op.type.lower())
                macs = fn(op)
                b.ops_meta.append({"type": op.type, "index": op.index,
                                   "output_shape": list(m.tensors[op.outputs[0]].shape),
                                   "macs": int(macs)})
            res = bb.emit_output(b.values[out_t.index])
        bb.emit_func_output(res, params=[x] + b.params)
    mod = bb.get()
    lw.ops = b.ops_meta
    lw.times["relax"] = time.time() - t0

    # --- schedule kernels -------------------------------------------------------------
    t1 = time.time()
    new_funcs = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            sched = b.scheds.get(gv.name_hint)
            if sched is not None:
                sch = s_tir.Schedule(func)
                sched(sch)
                func = sch.mod["main"]
            new_funcs[gv] = func
    for gv, func in new_funcs.items():
        mod[gv] = func
    lw.relax_text = mod["main"].script(show_meta=False)
    tir_mod = tvm.IRModule({gv: f for gv, f in new_funcs.items()})
    lw.tir_text = tir_mod.script(show_meta=False)

    # --- memory planning (Relax) ------------------------------------------------------
    planned = tvm.transform.Sequential([
        relax.transform.RewriteDataflowReshape(),
        relax.transform.ToNonDataflow(),
        relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(),
        relax.transform.StaticPlanBlockMemory(),
    ])(mod)
    main = planned["main"]
    lw.relax_text += "\n\n# ---- after StaticPlanBlockMemory ----\n" + main.script(show_meta=False)
    _plan(lw, main, b, x)
    lw.times["plan"] = time.time() - t1

    # --- TIR -> C ---------------------------------------------------------------------
    t2 = time.time()
    used = {c[0] for c in lw.calls}
    ptr_funcs = {gv: _to_pointer_params(f) for gv, f in new_funcs.items() if gv.name_hint in used}
    for gv, f in ptr_funcs.items():
        lw.kernels.append((gv.name_hint, [C_TYPES[str(p.ty.element_type.dtype)] + "*"
                                          if hasattr(p.ty, "element_type") else "void*"
                                          for p in f.params]))
    target = Target("c")
    cmod = tirx.transform.BindTarget(target.with_host(target))(tvm.IRModule(ptr_funcs))
    pipe = _tir_passes()
    ctx = tvm.transform.PassContext.current()
    with tvm.transform.PassContext(config={"tirx.disable_vectorize": True},
                                   instruments=list(ctx.instruments)):
        cmod = pipe(cmod)
        cmod = tirx.transform.LowerIntrin()(cmod)
    from tvm.tirx.build import codegen_build
    src = codegen_build(cmod, target).inspect_source()
    text = _strip_tvm(src)
    if re.search(r"\btvmgen_(dot4|ld4|clamp)\(", text):
        text = re.sub(r"^int32_t tvmgen_(dot4|ld4|clamp)\([^)]*\);\n", "", text, flags=re.M)
        text = KERNEL_PREAMBLE + "\n" + _fuse_dot4(text)
    lw.kernel_source = text
    if "TVMFFI" in lw.kernel_source or "TVMBackend" in lw.kernel_source:
        raise ModelError("%s: internal error: generated kernels still use the TVM runtime."
                         % m.path)
    lw.times["c"] = time.time() - t2
    lw.constants_size = sum(a.nbytes for _, a in lw.constants)
    return lw


def _plan(lw, main, b, input_var):
    """Walk the planned Relax main: storages -> workspace offsets, calls -> kernel calls.

    StaticPlanBlockMemory has already reused storages between tensors whose lifetimes do not
    overlap; its storages are laid out back to back (16-byte aligned) in one workspace."""
    import tvm
    from tvm import relax
    align = 16
    storage_off = {}
    where = {input_var: ("input",)}
    for v, (cname, arr) in b.param_data.items():
        where[v] = ("const", cname)
    const_seen = set()
    ws = 0
    ret = main.body.body
    builtin_out = []
    for block in main.body.blocks:
        for bind in block.bindings:
            var, val = bind.var, bind.value
            if isinstance(val, relax.Call):
                op = val.op
                if isinstance(op, tvm.ir.Op):
                    name = op.name
                    if name == "relax.memory.alloc_storage":
                        size = int(val.args[0].values[0])
                        ws = (ws + align - 1) // align * align
                        storage_off[var] = ws
                        ws += size
                    elif name == "relax.memory.alloc_tensor":
                        off = storage_off[val.args[0]] + int(val.args[1].value)
                        where[var] = ("ws", off)
                    elif name == "relax.builtin.alloc_tensor":
                        where[var] = ("output",)
                        builtin_out.append(var)
                    elif name in ("relax.reshape", "relax.memory.view"):
                        where[var] = where[val.args[0]]
                    elif name == "relax.memory.kill_storage" or name == "relax.memory.kill_tensor":
                        pass
                    else:
                        raise ModelError("internal error: unexpected Relax op %s after "
                                         "memory planning" % name)
                else:  # GlobalVar: a TIR kernel call
                    args = [where[a] for a in val.args]
                    out_ty = val.args[-1].ty
                    nbytes = int(np.prod([int(d) for d in out_ty.shape.values])) * \
                        np.dtype(str(out_ty.dtype)).itemsize
                    lw.calls.append((op.name_hint, args, nbytes))
            elif isinstance(val, relax.Var):
                where[var] = where[val]
            else:
                raise ModelError("internal error: unexpected binding %s" % type(val).__name__)
    r = where[ret]
    if r != ("output",):
        # the result lives elsewhere (e.g. model ends in RESHAPE of a workspace tensor)
        lw.copies.append((("output",), r, lw.output.size_bytes))
    if len(builtin_out) > 1:
        raise ModelError("internal error: more than one output allocation")
    lw.workspace_size = (ws + align - 1) // align * align
    for v in b.params:
        cname, arr = b.param_data[v]
        if cname not in const_seen:
            const_seen.add(cname)
            lw.constants.append((cname, arr))
