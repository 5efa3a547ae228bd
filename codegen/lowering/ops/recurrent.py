"""Recurrent layers: UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite's fully-integer form (int8 activations and hidden
state, int16 cell state, int8 weights, int32 biases: the "8x8_16" kernel a full-int8 conversion of a Keras LSTM
gives).

The reference is tf.lite's integer kernel, which the pipeline's reference interpreter (BUILTIN_REF) runs:
kernels/unidirectional_sequence_lstm.cc (PopulateQuantizedLstmParams8x8_16: the effective scales in float from the
weights', the input's, the hidden state's and the intermediates' scales; the zero points times the weights' row
sums folded into the biases) and lstm_eval.cc EvalInteger8x8_16 with portable_tensor_utils (gemmlowp int16
sigmoid / tanh, CwiseMul with rounding shifts, saturating adds).  TFLite Micro's own LSTM (micro/kernels/
lstm_eval.cc, rewritten in 2023) uses other int16 sigmoid / tanh approximations, so its results differ; this
module follows tf.lite.

The time loop is one kernel: the step-by-step integer arithmetic is the C function tvmgen_rnn_lstm of
recurrent.h, called once with the layer's sizes as literals; this module computes its constants at codegen time.
The hidden and cell state are variable tensors in TFLite (kept across invocations until reset): the kernel starts
every invocation from the reset state (hidden = its zero point, cell = 0), i.e. tf.lite after
reset_all_variables(), which is how the reference is run.  Peephole connections are supported (without a
projection that changes the width: TFLite's kernel then applies them to the first n_output cells only); layer
normalization (never produced by a Keras LSTM) is refused.
"""

import numpy as np

from ..quant import quantize_multiplier
from ..registry import _what, options, register

LSTM_OPTIONS = options("UnidirectionalSequenceLSTMOptions", activation=("FusedActivationFunction", None),
                       cell_clip="CellClip", proj_clip="ProjClip", time_major=("TimeMajor", bool),
                       asymmetric_quantize_inputs=("AsymmetricQuantizeInputs", bool))

# lstm::full tensor indices
X, WX, WH, PEEP, BIAS, PROJ_W, PROJ_B, H_STATE, C_STATE, LAYER_NORM = 0, 1, 5, 9, 12, 16, 17, 18, 19, 20
GATES = ("input", "forget", "cell", "output")
CIFG, PROJ, PEEPHOLE = 1, 2, 4      # recurrent.h TVMGEN_RNN_CIFG / _PROJ / _PEEP


def _input(m, op, k):
    """Input `k` of the op, or None when it is absent (-1 or beyond the list)."""
    return m.tensors[op.inputs[k]] if k < len(op.inputs) and op.inputs[k] >= 0 else None


def _log2(scale):
    """CheckedLog2: the exponent of a power-of-two scale, or None."""
    e = float(np.log2(np.float32(scale)))
    r = round(e)
    return int(r) if abs(e - r) < 1e-3 else None


def _checks(m, op):
    what = _what(op)
    if len(op.inputs) not in (20, 24):
        m.fail("%s has %d inputs; TFLite's LSTM takes 20 or 24." % (what, len(op.inputs)))
    x, o = _input(m, op, X), m.tensors[op.outputs[0]]
    if x.dtype != "int8" or len(x.scale) != 1:
        m.fail("%s: input %r is %s; only the fully-integer LSTM (int8 input, int16 cell state) is supported."
               % (what, x.name, x.dtype))
    if len(x.shape) != 3:
        m.fail("%s: input shape %s is not [batch, time, features]." % (what, x.shape))
    if op.options.get("asymmetric_quantize_inputs"):
        m.fail("%s: asymmetric_quantize_inputs is a hybrid (float) LSTM option; only the fully-integer LSTM is "
               "supported." % what)
    peep = [k for k in range(PEEP, PEEP + 3) if _input(m, op, k) is not None]
    cifg = _input(m, op, WX) is None
    if peep and peep != list(range(PEEP + (1 if cifg else 0), PEEP + 3)):
        m.fail("%s: peephole weights must be there for every gate (but the input gate under CIFG) or for none."
               % what)
    for k in peep:
        t = _input(m, op, k)
        if t.data is None or t.dtype != "int16" or len(t.scale) != 1:
            m.fail("%s: peephole weights %r must be a constant int16 tensor with one scale (the integer LSTM's)."
                   % (what, t.name))
    if any(_input(m, op, k) is not None for k in range(LAYER_NORM, len(op.inputs))):
        m.fail("%s: layer normalization is not supported (Keras' LSTM has none); re-export without it." % what)
    for k in range(WX, WX + 8):
        w = _input(m, op, k)
        if w is None and not (cifg and k in (WX, WH)):
            m.fail("%s: weight input #%d is missing." % (what, k))
        if w is not None and (w.data is None or w.dtype != "int8" or len(w.scale) != 1):
            m.fail("%s: weight tensor %r must be a constant int8 tensor with one scale (it is %s%s)."
                   % (what, w.name, w.dtype, "" if w.data is not None else ", computed"))
    for k in range(BIAS, BIAS + 4):
        b = _input(m, op, k)
        if b is None and not (cifg and k == BIAS):
            m.fail("%s: bias input #%d is missing." % (what, k))
        if b is not None and (b.data is None or b.dtype != "int32"):
            m.fail("%s: bias tensor %r must be a constant int32 tensor." % (what, b.name))
    pw, pb = _input(m, op, PROJ_W), _input(m, op, PROJ_B)
    if pw is not None and (pw.data is None or pw.dtype != "int8" or len(pw.scale) != 1):
        m.fail("%s: projection weights %r must be a constant int8 tensor with one scale." % (what, pw.name))
    if pb is not None and (pw is None or pb.data is None or pb.dtype != "int32"):
        m.fail("%s: projection bias %r needs projection weights and must be a constant int32 tensor."
               % (what, pb.name))
    h, c = _input(m, op, H_STATE), _input(m, op, C_STATE)
    if h is None or c is None or h.data is not None or c.data is not None:
        m.fail("%s: the hidden and cell state inputs must be variable tensors." % what)
    if h.dtype != "int8" or len(h.scale) != 1 or c.dtype != "int16" or len(c.scale) != 1:
        m.fail("%s: hidden state %r is %s and cell state %r is %s; the integer LSTM needs an int8 hidden state "
               "and an int16 cell state, both quantized." % (what, h.name, h.dtype, c.name, c.dtype))
    if _log2(c.scale[0]) is None or not -15 <= _log2(c.scale[0]) <= -9:
        m.fail("%s: cell state scale %g is not a power of two between 2^-15 and 2^-9, which TFLite's integer LSTM "
               "needs." % (what, float(c.scale[0])))
    if len(op.intermediates) != 5 or not m.tensors[op.intermediates[4]].is_quantized:
        m.fail("%s: the integer LSTM needs 5 intermediate tensors, the last one quantized (the hidden scale); "
               "the file was not written by the TFLite converter as is." % what)
    n_cell = _input(m, op, WX + 3).shape[0]
    n_out = _input(m, op, WH + 3).shape[1]
    batch = x.shape[1] if op.options.get("time_major") else x.shape[0]
    if o.dtype != "int8" or tuple(o.shape) != tuple(x.shape[:2]) + (n_out,):
        m.fail("%s: output %r is %s %s; expected int8 %s." % (what, o.name, o.dtype, o.shape,
                                                               tuple(x.shape[:2]) + (n_out,)))
    if h.size != batch * n_out or c.size != batch * n_cell:
        m.fail("%s: state sizes %d/%d do not match batch %d x %d outputs / %d cells."
               % (what, h.size, c.size, batch, n_out, n_cell))
    if pw is None and n_out != n_cell:
        m.fail("%s: %d outputs but %d cells and no projection." % (what, n_out, n_cell))
    if peep and n_out != n_cell:
        # TFLite's VectorBatchVectorCwiseProductAccumulate call walks n_output peephole weights, not n_cell
        m.fail("%s: peephole connections with a projection to %d outputs from %d cells are not supported (TFLite's "
               "kernel applies them to the first n_output cells only)." % (what, n_out, n_cell))


def _f32(v):
    return np.float32(v)


def lstm_constants(m, op):
    """The kernel's constants and scalars, as TFLite's Prepare computes them: (w int8, b int32, q int32,
    peephole int16, scalars dict)."""
    x, h, c = _input(m, op, X), _input(m, op, H_STATE), _input(m, op, C_STATE)
    cifg = _input(m, op, WX) is None
    pw, pb = _input(m, op, PROJ_W), _input(m, op, PROJ_B)
    hidden = m.tensors[op.intermediates[4]]
    n_cell = _input(m, op, WX + 3).shape[0]
    n_input = x.shape[2]
    n_out = _input(m, op, WH + 3).shape[1]
    izp, hzp = int(x.zero_point[0]), int(h.zero_point[0])
    # The zero point tf.lite 2.21 adds to o * tanh(c) is the hidden intermediate's without a projection and its
    # NEGATION with one (measured with the fuzzer's LSTM models: every other sign combination differs once the
    # int8 clamp of the hidden value is reached)
    hidden_zp = int(hidden.zero_point[0]) if len(hidden.zero_point) else 0
    gates = range(1, 4) if cifg else range(4)
    inter = _f32(2.0 ** -12)          # no layer norm: the gates are Q3.12
    wx, wh, bx, bh = [], [], [], []
    q = np.zeros(26, np.int64)
    for g in gates:
        w_x, w_h = _input(m, op, WX + g), _input(m, op, WH + g)
        bias = _input(m, op, BIAS + g)
        dx = np.asarray(w_x.data, np.int64)
        dh = np.asarray(w_h.data, np.int64)
        wx.append(dx.reshape(-1))
        wh.append(dh.reshape(-1))
        # PrecomputeZeroPointTimesWeightWithBias with zero point -input_zp / -output_state_zp
        bx.append(np.asarray(bias.data, np.int64) - izp * dx.sum(1))
        bh.append(-hzp * dh.sum(1))
        # effective scales: float products and quotients of float32 scales, then QuantizeMultiplier(double)
        q[4 * g: 4 * g + 2] = quantize_multiplier(float(_f32(w_x.scale[0]) * _f32(x.scale[0]) / inter))
        q[4 * g + 2: 4 * g + 4] = quantize_multiplier(float(_f32(w_h.scale[0]) * _f32(h.scale[0]) / inter))
    hs = _f32(hidden.scale[0])
    q[16:18] = quantize_multiplier(float(_f32(2.0 ** -15) / hs * _f32(2.0 ** -15)))
    parts_w = wx + wh
    parts_b = bx + bh
    if pw is not None:
        dp = np.asarray(pw.data, np.int64)
        parts_w.append(dp.reshape(-1))
        # PrecomputeZeroPointTimesWeightWithBias(hidden_zp, ...): +hidden_zp times the row sums, as the hidden
        # value is stored with zero point -hidden_zp (below)
        pbias = np.asarray(pb.data, np.int64) if pb is not None else np.zeros(n_out, np.int64)
        parts_b.append(pbias + hidden_zp * dp.sum(1))
        q[18:20] = quantize_multiplier(float(_f32(pw.scale[0]) * hs / _f32(h.scale[0])))
    peep = np.zeros((3, n_cell), np.int16)
    have_peep = _input(m, op, PEEP + 1) is not None
    for slot, k in enumerate((PEEP, PEEP + 1, PEEP + 2)):     # input, forget, output gate
        t = _input(m, op, k)
        if t is None:
            continue
        peep[slot] = np.asarray(t.data, np.int16).reshape(-1)
        # std::pow(2.0f, cell_scale) * weight scale / intermediate scale, in float
        q[20 + 2 * slot: 22 + 2 * slot] = quantize_multiplier(
            float(_f32(2.0 ** _log2(c.scale[0])) * _f32(t.scale[0]) / inter))
    b = np.concatenate(parts_b)
    if np.abs(b).max(initial=0) >= 2 ** 31:
        m.fail("%s: a bias with the zero point folded in does not fit int32 (TFLite's kernel would overflow too)."
               % _what(op))
    cell_scale = _log2(c.scale[0])
    cell_clip = op.options.get("cell_clip", 0.0) or 0.0
    proj_clip = op.options.get("proj_clip", 0.0) or 0.0
    qcell = int(min(max(_f32(cell_clip) / _f32(c.scale[0]), -32768.0), 32767.0)) if cell_clip > 0 else 0
    qproj = int(min(max(_f32(proj_clip) / _f32(h.scale[0]), -128.0), 127.0)) if proj_clip > 0 else 0
    time_major = bool(op.options.get("time_major", False))
    steps, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    scalars = dict(n_batch=batch, n_steps=steps, n_input=n_input, n_cell=n_cell, n_output=n_out,
                   flags=(CIFG if cifg else 0) | (PROJ if pw is not None else 0) | (PEEPHOLE if have_peep else 0),
                   time_major=int(time_major),
                   cell_scale=cell_scale, hidden_zp=-hidden_zp if pw is not None else hidden_zp, state_zp=hzp, cell_clip=qcell, proj_clip=qproj)
    return (np.concatenate(parts_w).astype(np.int8), b.astype(np.int32), q.astype(np.int32),
            peep if have_peep else np.zeros(1, np.int16), scalars)


SCALARS = ("n_batch", "n_steps", "n_input", "n_cell", "n_output", "flags", "time_major", "cell_scale", "hidden_zp",
           "state_zp", "cell_clip", "proj_clip")


@register("UNIDIRECTIONAL_SEQUENCE_LSTM", family="recurrent", options=LSTM_OPTIONS, validate=_checks)
def lower_lstm(ctx, op):
    """LSTM over a sequence, TFLite's fully-integer kernel (int16 cell state; CIFG, peephole, projection, clipping)."""
    from .. import microkernels as mk
    w, b, q, peep, s = lstm_constants(ctx.m, op)
    o_t = ctx.m.tensors[op.outputs[0]]
    args = [ctx.operand(op.inputs[X]), ctx.const(w, "lstm_w"), ctx.const(b, "lstm_b"), ctx.const(q, "lstm_q"),
            ctx.const(peep, "lstm_peep")]
    # scratch (int16): four gates, tanh(c), the cell state, then the hidden and output state bytes
    scratch = 6 * s["n_cell"] + (s["n_cell"] + s["n_output"] + 1) // 2
    y = mk.emit_call(ctx, op, "tvmgen_rnn_lstm", args, o_t.shape, "int8", scratch, "int16",
                     [s[k] for k in SCALARS])
    ctx.values[op.outputs[0]] = y
    n_gates = 3 if s["flags"] & CIFG else 4
    return s["n_batch"] * s["n_steps"] * (n_gates * s["n_cell"] * (s["n_input"] + s["n_output"])
                                          + (s["n_cell"] * s["n_output"] if s["flags"] & PROJ else 0))
