/* The integer LSTM kernel that UNIDIRECTIONAL_SEQUENCE_LSTM lowers to (codegen/lowering/ops/recurrent.py).
 *
 * TFLite's fully-integer LSTM ("8x8_16": int8 input, hidden state and output, int16 cell state, int8 weights,
 * int32 biases), step by step as tf.lite computes it (kernels/lstm_eval.cc EvalInteger8x8_16 and the helpers of
 * kernels/internal/reference/portable_tensor_utils.cc), so the result is bit-identical:
 *   gate = act(MBQM(Wx . x + bx) + MBQM(Wh . h + bh))   each MBQM saturated to int16 as it is accumulated
 *   act  = sigmoid (input, forget, output gates; Q3.12 in, Q0.15 out) or tanh (cell gate, Q3.12 in), both
 *          gemmlowp's int16 fixed-point functions (reimplemented below from their definition)
 *   c    = sat16(RDBPOT(f * c, 15) + RDBPOT(i * g, 30 + cell_scale))   (CIFG: i = 32767 - f), clipped
 *   h    = sat8(MBQM(o * tanh(c), hidden scale) + hidden_zp), then the projection if there is one.
 * Constants come from recurrent.py: the weights of every gate in one int8 array, the biases with the zero points
 * folded in (TFLite's precomputed row sums) in one int32 array, the multipliers in another.
 * Everything is int32_t / int16_t explicitly: `int` is 16 bits on AVR.
 */
#include <stdint.h>
#include <string.h>
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TVMGEN_RNN_DSP 1
#else
#define TVMGEN_RNN_DSP 0
#endif
/* the gate functions inlined where they are called, with their integer bits as a literal (the exponent loop and
   its masks fold to constants) */
#define TVMGEN_RNN_INLINE static inline __attribute__((always_inline))

#define TVMGEN_RNN_CIFG 1
#define TVMGEN_RNN_PROJ 2
#define TVMGEN_RNN_PEEP 4

static inline int16_t tvmgen_rnn_sat16(int32_t v) {
  return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

static inline int16_t tvmgen_rnn_wrap16(int32_t v) { return (int16_t)(uint16_t)(uint32_t)v; }

/* gemmlowp SaturatingRoundingDoublingHighMul on int16: (ab + nudge) / 2^15 truncated, nudge 2^14 or 1 - 2^14 by
 * the sign of ab, is floor((ab + 2^14) / 2^15) for every integer ab (for ab < 0 truncation is the ceiling, and
 * ceil((ab + 1 - 2^14) / 2^15) = floor((ab + 2^14) / 2^15)); |ab| <= 2^30, so that lies in [-32768, 32768] and
 * only a = b = -32768 reaches 32768, which gemmlowp saturates to 32767: a clamp at the top is the whole of it
 * (one SMULBB, ADD and SSAT with ASR #15 on a Cortex-M4; tests/test_fast_kernels.py checks it against the
 * definition). */
static inline int16_t tvmgen_rnn_srdhm16(int16_t a, int16_t b) {
  const int32_t v = ((int32_t)a * (int32_t)b + (int32_t)(1 << 14)) >> 15;
  return (int16_t)(v > 32767 ? 32767 : v);
}

/* gemmlowp RoundingDivideByPOT on int16 (0 <= e <= 15) */
static inline int16_t tvmgen_rnn_rdbpot16(int16_t x, int32_t e) {
  int16_t mask = tvmgen_rnn_wrap16(((int32_t)1 << e) - 1);
  int16_t rem = (int16_t)(x & mask);
  int16_t thr = tvmgen_rnn_wrap16((mask >> 1) + (x < 0 ? 1 : 0));
  return tvmgen_rnn_wrap16((x >> e) + (rem > thr ? 1 : 0));
}

/* gemmlowp RoundingDivideByPOT on int32 */
static inline int32_t tvmgen_rnn_rdbpot32(int32_t x, int32_t e) {
  int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
  int32_t rem = x & mask;
  int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (rem > thr ? 1 : 0);
}

/* SaturatingRoundingMultiplyByPOT<+e> on int16: a saturating left shift */
static inline int16_t tvmgen_rnn_satshl16(int16_t x, int32_t e) {
  int32_t thr = ((int32_t)1 << (15 - e)) - 1;
  if (x > thr) return 32767;
  if (x < -thr) return -32768;
  return tvmgen_rnn_wrap16((int32_t)x * ((int32_t)1 << e));
}

/* a 32-bit gemmlowp constant as its 16-bit raw value (RescaleConstantInitializer) */
static inline int16_t tvmgen_rnn_k16(int32_t v) { return tvmgen_rnn_wrap16(tvmgen_rnn_rdbpot32(v, 16)); }

static inline int16_t tvmgen_rnn_add16(int16_t a, int16_t b) { return tvmgen_rnn_wrap16((int32_t)a + b); }
static inline int16_t tvmgen_rnn_sub16(int16_t a, int16_t b) { return tvmgen_rnn_wrap16((int32_t)a - b); }

/* exp(a) for a in [-1/4, 0), a and the result Q0.15 */
TVMGEN_RNN_INLINE int16_t tvmgen_rnn_exp_quarter(int16_t a) {
  const int16_t c_exp = tvmgen_rnn_k16(1895147668), c_third = tvmgen_rnn_k16(715827883);
  int16_t x = tvmgen_rnn_add16(a, (int16_t)(1 << 12));
  int16_t x2 = tvmgen_rnn_srdhm16(x, x), x3 = tvmgen_rnn_srdhm16(x2, x), x4 = tvmgen_rnn_srdhm16(x2, x2);
  int16_t x4_4 = tvmgen_rnn_rdbpot16(x4, 2);
  int16_t poly = tvmgen_rnn_rdbpot16(
      tvmgen_rnn_add16(tvmgen_rnn_srdhm16(tvmgen_rnn_add16(x4_4, x3), c_third), x2), 1);
  return tvmgen_rnn_sat16((int32_t)c_exp + tvmgen_rnn_srdhm16(c_exp, tvmgen_rnn_add16(x, poly)));
}

/* exp(a) for a <= 0 with `ibits` integer bits (Q ibits . 15-ibits), result Q0.15 */
TVMGEN_RNN_INLINE int16_t tvmgen_rnn_exp_neg(int16_t a, int32_t ibits) {
  static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  int32_t frac = 15 - ibits, k;
  int16_t quarter = (int16_t)(1 << (frac - 2));
  int16_t amq = tvmgen_rnn_sub16((int16_t)(a & (quarter - 1)), quarter);
  int16_t result = tvmgen_rnn_exp_quarter(ibits > 0 ? tvmgen_rnn_satshl16(amq, ibits) : amq);
  int16_t rem = tvmgen_rnn_sub16(amq, a);
  for (k = 0; k < 7; k++) {          /* exponents -2 .. +4 */
    int32_t expo = k - 2;
    if (ibits > expo && (rem & tvmgen_rnn_wrap16((int32_t)1 << (frac + expo))))
      result = tvmgen_rnn_srdhm16(result, tvmgen_rnn_k16(mults[k]));
  }
  if (ibits > 5 && a < tvmgen_rnn_k16(-((int32_t)1 << (36 - ibits)))) result = 0;
  if (a == 0) result = 32767;
  return result;
}

/* Newton-Raphson 1 / (1 + a) (logistic) or (1 - a) / (1 + a) (tanh) for a in (0, 1) Q0.15 */
TVMGEN_RNN_INLINE int16_t tvmgen_rnn_recip(int16_t a, int32_t tanh_form) {
  int32_t sum = (int32_t)a + 32767, i;
  int16_t half = tvmgen_rnn_wrap16((sum + (sum >= 0 ? 1 : -1)) / 2);
  int16_t x = tvmgen_rnn_add16(tvmgen_rnn_k16(1515870810), tvmgen_rnn_srdhm16(half, tvmgen_rnn_k16(-1010580540)));
  for (i = 0; i < 3; i++) {
    int16_t one_minus = tvmgen_rnn_sub16((int16_t)(1 << 13), tvmgen_rnn_srdhm16(half, x));
    x = tvmgen_rnn_add16(x, tvmgen_rnn_satshl16(tvmgen_rnn_srdhm16(x, one_minus), 2));
  }
  if (tanh_form) return tvmgen_rnn_satshl16(tvmgen_rnn_sub16(x, (int16_t)(1 << 13)), 2);
  return tvmgen_rnn_satshl16(x, 1);
}

/* gemmlowp::logistic on FixedPoint<int16_t, ibits> -> Q0.15 */
TVMGEN_RNN_INLINE int16_t tvmgen_rnn_sigmoid(int16_t a, int32_t ibits) {
  int16_t absa = a > 0 ? a : tvmgen_rnn_wrap16(-(int32_t)a);
  int16_t pos = tvmgen_rnn_recip(tvmgen_rnn_exp_neg(tvmgen_rnn_wrap16(-(int32_t)absa), ibits), 0);
  if (a == 0) return (int16_t)(1 << 14);
  return a > 0 ? pos : tvmgen_rnn_sub16(32767, pos);
}

/* gemmlowp::tanh on FixedPoint<int16_t, ibits> -> Q0.15 */
TVMGEN_RNN_INLINE int16_t tvmgen_rnn_tanh(int16_t a, int32_t ibits) {
  int16_t n = a < 0 ? a : tvmgen_rnn_wrap16(-(int32_t)a);
  int16_t t = tvmgen_rnn_recip(tvmgen_rnn_exp_neg(n, ibits + 1), 1);
  if (a == 0) return 0;
  return a < 0 ? tvmgen_rnn_wrap16(-(int32_t)t) : t;
}

/* MultiplyByQuantizedMultiplier, TFLite's double rounding: SaturatingRoundingDoublingHighMul of the wrapped
 * x * 2^left (its saturating case needs a negative multiplier, which QuantizeMultiplier never makes; its
 * truncating division by 2^31 equals an arithmetic shift after the nudge, see quant.srdhm), then
 * RoundingDivideByPOT */
static inline int32_t tvmgen_rnn_mbqm(int32_t x, int32_t mult, int32_t shift) {
  int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  int64_t ab = (int64_t)(int32_t)((uint32_t)x << left) * (int64_t)mult;
  return tvmgen_rnn_rdbpot32((int32_t)((ab + ((int64_t)1 << 30)) >> 31), right);
}

/* out[r] = sat(out[r] + MBQM(bias[r] + W[r] . v, mult, shift) + zp) for r < rows (MatrixBatchVectorMultiplyAccumulate) */
static void tvmgen_rnn_matvec16(const int8_t* w, const int32_t* bias, const int8_t* v, int32_t rows, int32_t cols,
                                int32_t mult, int32_t shift, int16_t* out) {
  int32_t r = 0, c;
#if TVMGEN_RNN_DSP
  /* two rows at a time, four columns per step: v's four values (SXTB16: v0, v2 and v1, v3) meet each row's four
     weights in two SMLADs; the same integer sums as the scalar loop */
  for (; r + 2 <= rows; r += 2) {
    int32_t acc0 = bias[r], acc1 = bias[r + 1];
    const int8_t* w0 = w + r * cols;
    const int8_t* w1 = w0 + cols;
    for (c = 0; c + 4 <= cols; c += 4) {
      int32_t vv, ve, vo, wv, we, wo;
      memcpy(&vv, v + c, 4);
      ve = __sxtb16(vv);
      __asm__("sxtb16 %0, %1, ror #8" : "=r"(vo) : "r"(vv));
      memcpy(&wv, w0 + c, 4);
      we = __sxtb16(wv);
      __asm__("sxtb16 %0, %1, ror #8" : "=r"(wo) : "r"(wv));
      acc0 = __smlad(we, ve, __smlad(wo, vo, acc0));
      memcpy(&wv, w1 + c, 4);
      we = __sxtb16(wv);
      __asm__("sxtb16 %0, %1, ror #8" : "=r"(wo) : "r"(wv));
      acc1 = __smlad(we, ve, __smlad(wo, vo, acc1));
    }
    for (; c < cols; c++) {
      acc0 += (int32_t)w0[c] * (int32_t)v[c];
      acc1 += (int32_t)w1[c] * (int32_t)v[c];
    }
    out[r] = tvmgen_rnn_sat16(tvmgen_rnn_mbqm(acc0, mult, shift) + (int32_t)out[r]);
    out[r + 1] = tvmgen_rnn_sat16(tvmgen_rnn_mbqm(acc1, mult, shift) + (int32_t)out[r + 1]);
  }
#endif
  for (; r < rows; r++) {
    int32_t acc = bias[r];
    const int8_t* wr = w + r * cols;
    for (c = 0; c < cols; c++) acc += (int32_t)wr[c] * (int32_t)v[c];
    out[r] = tvmgen_rnn_sat16(tvmgen_rnn_mbqm(acc, mult, shift) + (int32_t)out[r]);
  }
}

/* One LSTM layer over n_steps time steps, batch by batch, from the reset state (h = state_zp, c = 0).
 * x: [n_batch][n_steps][n_input] (time_major: [n_steps][n_batch][n_input]); out likewise with n_output.
 * w: per present gate (input unless CIFG, forget, cell, output) W_x [n_cell][n_input]; then per gate
 *    W_h [n_cell][n_output]; then the projection [n_output][n_cell].
 * b: per gate the effective input bias [n_cell], then per gate the effective recurrent bias [n_cell]; then the
 *    projection's [n_output].
 * q: per gate (4 slots, in gate order) mult_x, shift_x, mult_h, shift_h; then hidden mult, shift; proj mult, shift;
 *    then the peephole mult, shift of the input, forget and output gates.
 * peep: with TVMGEN_RNN_PEEP the int16 peephole weights [3][n_cell] (input, forget, output gate): the gate adds
 *    MBQM(w * c) before its activation (VectorBatchVectorCwiseProductAccumulate), the output gate with the
 *    updated cell state.
 * scratch: 5 * n_cell int16 (four gates, tanh(c)), n_cell int16 cell state, then n_cell + n_output int8. */
static inline int32_t tvmgen_rnn_lstm(const int8_t* x, const int8_t* w, const int32_t* b, const int32_t* q,
                                      const int16_t* peep, int16_t* scratch, int8_t* out, int32_t n_batch, int32_t n_steps,
                                      int32_t n_input, int32_t n_cell, int32_t n_output, int32_t flags,
                                      int32_t time_major, int32_t cell_scale, int32_t hidden_zp, int32_t state_zp,
                                      int32_t cell_clip, int32_t proj_clip) {
  int32_t cifg = (flags & TVMGEN_RNN_CIFG) != 0, proj = (flags & TVMGEN_RNN_PROJ) != 0;
  int32_t peephole = (flags & TVMGEN_RNN_PEEP) != 0;
  int32_t n_gates = cifg ? 3 : 4, bt, t, g, i, k;
  int16_t* gates = scratch;                       /* [4][n_cell]: input, forget, cell, output */
  int16_t* tanh_c = scratch + 4 * n_cell;
  int16_t* cell = scratch + 5 * n_cell;
  int8_t* hidden = (int8_t*)(scratch + 6 * n_cell);  /* [n_cell] */
  int8_t* state = hidden + n_cell;                     /* [n_output] */
  const int8_t* wh_base = w + n_gates * n_cell * n_input;
  const int8_t* wp = wh_base + n_gates * n_cell * n_output;
  const int32_t* bh_base = b + n_gates * n_cell;
  const int32_t* bp = bh_base + n_gates * n_cell;
  int32_t tanh_bits = 15 + cell_scale;
  for (bt = 0; bt < n_batch; bt++) {
    memset(state, (int)state_zp, (size_t)n_output);
    for (i = 0; i < n_cell; i++) cell[i] = 0;
    for (t = 0; t < n_steps; t++) {
      int32_t row = time_major ? t * n_batch + bt : bt * n_steps + t;
      const int8_t* xt = x + row * n_input;
      int8_t* ot = out + row * n_output;
      /* input, forget and cell gates from the old cell state; the cell update; then the output gate, whose
       * peephole reads the updated cell state (TFLite's order) */
      for (g = cifg ? 1 : 0; g < 5; g++) {
        if (g == 3) {
          for (i = 0; i < n_cell; i++) {
            int16_t f = gates[n_cell + i], gg = gates[2 * n_cell + i];
            int16_t in = cifg ? tvmgen_rnn_wrap16(32767 - (int32_t)f) : gates[i];
            int16_t fc = tvmgen_rnn_wrap16(tvmgen_rnn_rdbpot32((int32_t)f * cell[i], 15));
            int16_t ig = tvmgen_rnn_wrap16(tvmgen_rnn_rdbpot32((int32_t)in * gg, 30 + cell_scale));
            int32_t c = (int32_t)fc + ig;
            c = c > 32767 ? 32767 : (c < -32768 ? -32768 : c);
            if (cell_clip > 0) c = c > cell_clip ? cell_clip : (c < -cell_clip ? -cell_clip : c);
            cell[i] = (int16_t)c;
          }
          continue;
        }
        {
          int32_t gg = g == 4 ? 3 : g;            /* the gate computed in this pass */
          int16_t* gate = gates + gg * n_cell;
          const int32_t* qg = q + 4 * gg;
          k = gg - (cifg ? 1 : 0);                      /* its slot among the present gates' weights */
          for (i = 0; i < n_cell; i++) gate[i] = 0;
          tvmgen_rnn_matvec16(w + k * n_cell * n_input, b + k * n_cell, xt, n_cell, n_input, qg[0], qg[1], gate);
          tvmgen_rnn_matvec16(wh_base + k * n_cell * n_output, bh_base + k * n_cell, state, n_cell, n_output,
                              qg[2], qg[3], gate);
          if (peephole && gg != 2) {
            int32_t pk = gg == 3 ? 2 : gg;
            const int16_t* pw = peep + pk * n_cell;
            for (i = 0; i < n_cell; i++)
              gate[i] = tvmgen_rnn_sat16(tvmgen_rnn_mbqm((int32_t)pw[i] * cell[i], q[20 + 2 * pk], q[21 + 2 * pk])
                                         + (int32_t)gate[i]);
          }
          for (i = 0; i < n_cell; i++)
            gate[i] = gg == 2 ? tvmgen_rnn_tanh(gate[i], 3) : tvmgen_rnn_sigmoid(gate[i], 3);
        }
      }
      for (i = 0; i < n_cell; i++) {
        int32_t v;
        tanh_c[i] = tvmgen_rnn_tanh(cell[i], tanh_bits);
        v = tvmgen_rnn_mbqm((int32_t)gates[3 * n_cell + i] * tanh_c[i], q[16], q[17]) + hidden_zp;
        hidden[i] = (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
      }
      if (proj) {
        for (i = 0; i < n_output; i++) {
          int32_t acc = bp[i], c, v;
          const int8_t* wr = wp + i * n_cell;
          for (c = 0; c < n_cell; c++) acc += (int32_t)wr[c] * (int32_t)hidden[c];
          v = tvmgen_rnn_mbqm(acc, q[18], q[19]) + state_zp;
          v = v > 127 ? 127 : (v < -128 ? -128 : v);
          if (proj_clip > 0) v = v > proj_clip ? proj_clip : (v < -proj_clip ? -proj_clip : v);
          state[i] = (int8_t)v;
        }
      } else {
        memcpy(state, hidden, (size_t)n_output);
      }
      memcpy(ot, state, (size_t)n_output);
    }
  }
  return 0;
}
