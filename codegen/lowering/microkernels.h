/* Hand-written int8 microkernels that the generated kernels call (codegen/lowering/microkernels.py).
 *
 * Every function is `static inline` and always inlined: each TVM kernel calls one of them with its layer's
 * shapes as literal constants, so the C compiler specialises the loops per layer (constant trip counts,
 * immediate offsets), and layers with equal parameters share one kernel (Relax deduplicates the calls).
 *
 * Arithmetic is TFLite's reference kernels' exactly: int32 sums of (x - input_zp) * w + bias, then
 * MultiplyByQuantizedMultiplier (SRDHM then RoundingDivideByPOT for convolutions, one rounding for FULLY_CONNECTED),
 * + output zero point, clamp.  With the Armv7E-M DSP extension (Cortex-M4/M7/M33) the sums are SMLAD
 * dot products on int16 pairs (SXTB16 unpacks four int8 values into two registers); elsewhere (AVR, the
 * host) the same sums in plain C.  Integer addition is associative modulo 2^32, so both give the same
 * bytes as TFLite whatever the order of the products.
 *
 * Constants are laid out for these loops by microkernels.py at code generation time (see each function).
 */
#ifndef TVMGEN_MICROKERNELS_H_
#define TVMGEN_MICROKERNELS_H_
#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TVMGEN_MK_DSP 1
#else
#define TVMGEN_MK_DSP 0
#endif

/* the inner loops as Thumb-2 assembly (register allocation the compiler does not find on its own) */
#if TVMGEN_MK_DSP && defined(__thumb2__)
#define TVMGEN_MK_ASM 1
#else
#define TVMGEN_MK_ASM 0
#endif

/* all shapes, offsets and counters are int32_t: `int` is 16 bits on AVR */
#define TVMGEN_MK_INLINE static inline __attribute__((always_inline))
#define TVMGEN_MK_MAX_TAPS 64   /* depthwise kernels up to KH * KW = 64 (microkernels.py checks) */

/* requantization flags (compile-time constants at every call) */
#define TVMGEN_RQ_LSHIFT 1   /* some channel has a left shift: rq_lsh[] holds it */
#define TVMGEN_RQ_SMMUL 2    /* |acc << (lshift + 1)| < 2^31 is proven: SRDHM is one SMMULR */
#define TVMGEN_RQ_FAST 4     /* every right shift >= 1 and no overflow: (v + half + (v >> 31)) >> r */
#define TVMGEN_RQ_ZP 16      /* with FAST: the rounding constant also holds zp << r (adds the zero point) */
#define TVMGEN_CONV_PAIR 32  /* conv weights of a channel pair packed into one halfword (tvmgen_mk_conv_pair) */
#define TVMGEN_RQ_DOUBLED 64 /* with SMMUL: the sum arrives doubled (weights and bias stored x2) */

TVMGEN_MK_INLINE int32_t tvmgen_mk_ld4(const void* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_sat(int32_t v, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
  if (lo == -128 && hi == 127) return __ssat(v, 8);
#endif
  return v < lo ? lo : (v > hi ? hi : v);
}

/* SaturatingRoundingDoublingHighMul(a, m) = (a * m + 2^30) >> 31 (m > 0, no saturation case). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_srdhm(int32_t a, int32_t m, int32_t flags) {
  if (flags & TVMGEN_RQ_DOUBLED) {  /* a is already 2 * sum */
#if TVMGEN_MK_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(m));
    return r;
#else
    return (int32_t)(((int64_t)a * m + ((int64_t)1 << 31)) >> 32);
#endif
  }
  if (flags & TVMGEN_RQ_SMMUL) {
    /* (2a * m + 2^31) >> 32 is the same value; 2a fits int32 by the proven bound */
#if TVMGEN_MK_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"((int32_t)((uint32_t)a << 1)), "r"(m));
    return r;
#else
    return (int32_t)(((int64_t)a * 2 * m + ((int64_t)1 << 31)) >> 32);
#endif
  }
  return (int32_t)(((int64_t)a * m + ((int64_t)1 << 30)) >> 31);
}

/* Requantize one int32 sum (bias included) with TFLite's two roundings.  rq = {bias, multiplier, right
 * shift, rounding constant} of the channel: the constant is 2^(r-1) with TVMGEN_RQ_FAST, else the mask
 * 2^r - 1 of RoundingDivideByPOT. */
TVMGEN_MK_INLINE int32_t tvmgen_mk_requant_v(int32_t acc, int32_t m, int32_t r, int32_t c, int32_t lshift,
                                             int32_t flags, int32_t ozp, int32_t lo, int32_t hi) {
  if (flags & TVMGEN_RQ_LSHIFT) acc = (int32_t)((uint32_t)acc << lshift);
  int32_t v;
  if (flags & TVMGEN_RQ_FAST) {
    /* (v + c + (v >> 31)) >> r with the sign of acc for that of v = SRDHM(acc, m): m > 0 and the fast forms
     * rule out overflow, so v has acc's sign or is 0, and for v = 0 the -1 cannot change the result
     * ((c - 1) >> r = c >> r: c = 2^(r-1) (+ zp << r), r >= 1).  With SMMULR that makes the whole rounding one
     * SMMLAR, (t << 32 + x m + 2^31) >> 32 = t + SMMULR(x, m), accumulating t = c + (acc >> 31). */
    const int32_t t = c + (acc >> 31);
#if TVMGEN_MK_DSP
    if (flags & (TVMGEN_RQ_DOUBLED | TVMGEN_RQ_SMMUL)) {
      const int32_t x = (flags & TVMGEN_RQ_DOUBLED) ? acc : (int32_t)((uint32_t)acc << 1);
      __asm__("smmlar %0, %1, %2, %3" : "=r"(v) : "r"(x), "r"(m), "r"(t));
    } else {
      v = tvmgen_mk_srdhm(acc, m, flags) + t;
    }
#else
    v = tvmgen_mk_srdhm(acc, m, flags) + t;
#endif
    v >>= r;
    if (flags & TVMGEN_RQ_ZP) return tvmgen_mk_sat(v, lo, hi);
  } else {
    v = tvmgen_mk_srdhm(acc, m, flags);
    int32_t t = (c >> 1) - (v >> 31) - (v & c);
    v = (v >> r) - (t >> 31);
  }
  return tvmgen_mk_sat(v + ozp, lo, hi);
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_requant_s(int32_t acc, const int32_t* rq, int32_t stride, const int8_t* lsh,
                                             int32_t flags, int32_t ozp, int32_t lo, int32_t hi) {
  return tvmgen_mk_requant_v(acc, rq[stride], rq[2 * stride], rq[3 * stride],
                             (flags & TVMGEN_RQ_LSHIFT) ? *lsh : 0, flags, ozp, lo, hi);
}

/* the fields of a channel as consecutive words (stride 1); the depthwise kernel keeps them by field for each
 * group of four channels (stride 4), so that the four channels' values load together */
TVMGEN_MK_INLINE int32_t tvmgen_mk_requant(int32_t acc, const int32_t* rq, const int8_t* lsh, int32_t flags,
                                           int32_t ozp, int32_t lo, int32_t hi) {
  return tvmgen_mk_requant_s(acc, rq, 1, lsh, flags, ozp, lo, hi);
}

/* MultiplyByQuantizedMultiplier, single rounding (per-channel FULLY_CONNECTED): (acc * m + 2^(t-1)) >> t
 * with t = 31 - shift >= 32, as the high word of one 64-bit multiply-accumulate.  rq = {bias, multiplier,
 * t - 32, 2^(t-33) (the rounding term's high word; its low word is 0 unless t == 32: then 2^31)}. */
#define TVMGEN_RQS_T32 1     /* some channel has t == 32: its rounding term is in the low word */
/* FULLY_CONNECTED modes (flags of tvmgen_mk_fc_pair / tvmgen_mk_fc besides TVMGEN_RQS_T32) */
#define TVMGEN_FC_PER_TENSOR 2  /* fc_pair: rq = one row {0, m, t - 32, hr} then the [U4] biases (4 B per output) */
#define TVMGEN_FC_DIRECT 4      /* fc: the row read in place (zero point folded into the bias), no int16 copy */
TVMGEN_MK_INLINE int32_t tvmgen_mk_requant_single(int32_t acc, const int32_t* rq, int32_t ozp, int32_t lo,
                                                  int32_t hi, int32_t flags) {
  const uint32_t low = (flags & TVMGEN_RQS_T32) ? (rq[2] == 0 ? 0x80000000u : 0u) : 0u;
  int64_t v = (int64_t)acc * rq[1] + (((int64_t)rq[3] << 32) | low);
  return tvmgen_mk_sat(((int32_t)(v >> 32) >> rq[2]) + ozp, lo, hi);
}

/* The same for one multiplier m, shift t - 32 = ts and rounding high word hr given as values (literals at a
 * per-tensor call: the compiler keeps them in registers or immediates, no table loads per output). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_requant_single_v(int32_t acc, int32_t m, int32_t ts, int32_t hr, int32_t ozp,
                                                    int32_t lo, int32_t hi) {
  const uint32_t low = ts == 0 ? 0x80000000u : 0u;
  int64_t v = (int64_t)acc * m + (((int64_t)hr << 32) | low);
  return tvmgen_mk_sat(((int32_t)(v >> 32) >> ts) + ozp, lo, hi);
}

/* ------------------------------------------------------------------------------------------------------
 * im2col: the K = KH*KW*C inputs of output pixel (oh, ow) as int16 (x - zp), 0 for padding taps, zero-filled
 * up to K4 (a multiple of 4).  Groups of four inputs are G int16 apart and this pixel's group starts J int16
 * into it (G = 8, J = 0 or 4 interleaves the columns of two pixels so that one pointer and two LDRDs load
 * both; G = 4, J = 0 is a plain row).  With the DSP extension the four inputs of a group are stored in the
 * order 0, 2, 1, 3, which is what SXTB16 of an input word gives and what SXTB16 of a weight word (natural
 * byte order) pairs with: (x0, x2) with (w0, w2), (x1, x3) with (w1, w3).  Without it, natural order. */
#if TVMGEN_MK_DSP
#define TVMGEN_MK_COL(k) col[((k) >> 2) * G + J + ((((k) & 1) << 1) | (((k) >> 1) & 1))]
#else
#define TVMGEN_MK_COL(k) col[((k) >> 2) * G + J + ((k) & 3)]
#endif

TVMGEN_MK_INLINE void tvmgen_mk_im2col(int16_t* col, int32_t G, int32_t J, const int8_t* x, int32_t oh, int32_t ow, int32_t H,
                                       int32_t W, int32_t C, int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t DH, int32_t DW, int32_t PT,
                                       int32_t PL, int32_t izp, int32_t K4, int32_t M) {
  /* M = 2 stores 2 (x - zp): the sums come out doubled, as SRDHM-by-SMMULR wants (TVMGEN_RQ_DOUBLED) */
  int32_t k = 0;
  if ((C & 3) != 0 && KH * KW * C <= 64) {
    /* small windows over few channels (first layers): a window that lies inside the input is copied with
     * every offset and column position a constant (fully unrolled), no per-tap checks */
    const int32_t ih0 = oh * SH - PT, iw0 = ow * SW - PL;
    if (ih0 >= 0 && ih0 + (KH - 1) * DH < H && iw0 >= 0 && iw0 + (KW - 1) * DW < W) {
      const int8_t* base = x + (ih0 * W + iw0) * C;
#if TVMGEN_MK_DSP
      /* a group of four inputs that are four consecutive bytes (one kernel row, dilation 1): one word, two
       * SXTB16 (which give the group's DSP order 0, 2 / 1, 3), two SSUB16 of the zero point, one STRD */
      const int32_t zz = (int32_t)(((uint32_t)(uint16_t)izp << 16) | (uint16_t)izp);
#pragma GCC unroll 16
      for (int32_t t = 0; t + 4 <= KH * KW * C; t += 4) {
        const int32_t kh = t / (KW * C), r = t % (KW * C);
        if (DW == 1 && r + 4 <= KW * C) {
          const int32_t v = tvmgen_mk_ld4(base + kh * DH * W * C + r);
          int32_t o, e2, o2;
          __asm__("sxtb16 %0, %1, ror #8" : "=r"(o) : "r"(v));
          e2 = __ssub16(__sxtb16(v), zz);
          o2 = __ssub16(o, zz);
          if (M == 2) {
            e2 = __sadd16(e2, e2);
            o2 = __sadd16(o2, o2);
          }
          int32_t* gw = (int32_t*)(void*)&TVMGEN_MK_COL(t);
          gw[0] = e2;
          gw[1] = o2;
        } else {
#pragma GCC unroll 4
          for (int32_t u = t; u < t + 4; u++) {
            const int32_t uh = u / (KW * C), uw = (u / C) % KW, uc = u % C;
            TVMGEN_MK_COL(u) = (int16_t)(M * (base[(uh * DH * W + uw * DW) * C + uc] - izp));
          }
        }
      }
#pragma GCC unroll 4
      for (int32_t t = KH * KW * C / 4 * 4; t < KH * KW * C; t++) {
        const int32_t kh = t / (KW * C), kw = (t / C) % KW, c = t % C;
        TVMGEN_MK_COL(t) = (int16_t)(M * (base[(kh * DH * W + kw * DW) * C + c] - izp));
      }
#else
#pragma GCC unroll 64
      for (int32_t t = 0; t < KH * KW * C; t++) {
        const int32_t kh = t / (KW * C), kw = (t / C) % KW, c = t % C;
        TVMGEN_MK_COL(t) = (int16_t)(M * (base[(kh * DH * W + kw * DW) * C + c] - izp));
      }
#endif
#pragma GCC unroll 4
      for (int32_t t = KH * KW * C; t < K4; t++) TVMGEN_MK_COL(t) = 0;
      return;
    }
  }
  for (int32_t kh = 0; kh < KH; kh++) {
    int32_t ih = oh * SH + kh * DH - PT;
    for (int32_t kw = 0; kw < KW; kw++) {
      int32_t iw = ow * SW + kw * DW - PL;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
        for (int32_t c = 0; c < C; c++, k++) TVMGEN_MK_COL(k) = 0;
        continue;
      }
      const int8_t* px = x + (ih * W + iw) * C;
      if ((C & 3) == 0) {           /* k is a multiple of 4 here: whole groups */
        int16_t* g = &TVMGEN_MK_COL(k);
        for (int32_t c = 0; c < C; c += 4, g += G) {
#if TVMGEN_MK_DSP
          const int32_t zz = (int32_t)(((uint32_t)(uint16_t)izp << 16) | (uint16_t)izp);
          int32_t v = tvmgen_mk_ld4(px + c), o;
          __asm__("sxtb16 %0, %1, ror #8" : "=r"(o) : "r"(v));
          int32_t* gw = (int32_t*)(void*)g;
          int32_t e2 = __ssub16(__sxtb16(v), zz), o2 = __ssub16(o, zz);     /* (x0, x2), (x1, x3) */
          if (M == 2) {
            e2 = __sadd16(e2, e2);
            o2 = __sadd16(o2, o2);
          }
          gw[0] = e2;
          gw[1] = o2;
#else
          g[0] = (int16_t)(M * (px[c + 0] - izp));
          g[1] = (int16_t)(M * (px[c + 1] - izp));
          g[2] = (int16_t)(M * (px[c + 2] - izp));
          g[3] = (int16_t)(M * (px[c + 3] - izp));
#endif
        }
        k += C;
      } else {
        for (int32_t c = 0; c < C; c++, k++) TVMGEN_MK_COL(k) = (int16_t)(M * (px[c] - izp));
      }
    }
  }
  for (; k < K4; k++) TVMGEN_MK_COL(k) = 0;
}
#undef TVMGEN_MK_COL


/* The stream's words are 4-aligned (its array is 16-aligned, 2 * K4 a multiple of 8) except on AVR, where the
 * constants are copied to unpadded workspace bytes before the call (and no access needs alignment) */
#if defined(__GNUC__) && !defined(__AVR__)
#define TVMGEN_MK_ALIGNED4(p) __builtin_assume_aligned((p), 4)
#else
#define TVMGEN_MK_ALIGNED4(p) (p)
#endif

/* The 8 words of a channel pair's requantization that follow its 2 * K4 weight bytes in the stream, as values
 * (memcpy: the stream is int8). */
TVMGEN_MK_INLINE void tvmgen_mk_conv_rq(const int8_t* p, int32_t* r) {
  memcpy(r, TVMGEN_MK_ALIGNED4(p), 8 * sizeof(int32_t));
}

/* One pair of output channels for the two pixels whose columns are in col: wp points at the pair's 2 * K4 weight
 * bytes, which its 8 requantization words follow (rows 2p and 2p + 1 of tvmgen_mk_requant's table); lsh at its
 * left shifts.  `two` = 0 for a lone last pixel, `second` = 0 for a lone last channel (compile-time constants
 * at every call, so the stores are unconditional code).  Returns the next pair's wp: with the Thumb-2 loop the
 * pointer it advanced, so that no copy of it (or of a separate table pointer) lives across the loop. */
TVMGEN_MK_INLINE const int8_t* tvmgen_mk_conv_pair(const int16_t* col, const int8_t* wp,
                                          const int8_t* lsh, int8_t* o0, int32_t OC, int32_t K4, int32_t two, int32_t second,
                                          int32_t sx0, int32_t sx1, int32_t flags, int32_t ozp, int32_t lo,
                                          int32_t hi) {
  int32_t b[2];
  memcpy(&b[0], TVMGEN_MK_ALIGNED4(wp + 2 * K4), sizeof(int32_t));
  memcpy(&b[1], TVMGEN_MK_ALIGNED4(wp + 2 * K4 + 16), sizeof(int32_t));
  int32_t s00 = b[0], s01 = b[1], s10 = s00, s11 = s01;
  const int8_t* rp = wp + 2 * K4;     /* the requantization words */
  if (flags & TVMGEN_CONV_PAIR) {
    /* Channels 0 ("B", unsigned low bytes b' = w + 128) and 1 ("A", signed high bytes) of the pair share each
     * weight halfword b' + 256 a: S = sum x (b' + 256 a) by SMLAD on the raw word, T = sum x b' by SMLAD on
     * its UXTB16.  A's sum is (S - T) / 256 (exact while |A's sum| < 2^23, proven at codegen time), B's is
     * T - 128 sum x (sx0, sx1: the columns' sums).  16 MACs in 12 instructions.  The pair's weights: [K4/4][2
     * words][4 bytes], word 0 for the group's inputs (0, 2), word 1 for (1, 3): the DSP im2col pairs. */
    int32_t S0 = 0, T0 = 0, S1 = 0, T1 = 0;
#if TVMGEN_MK_ASM
    const int16_t* cp = col;
    const int8_t* wq = wp;
    /* the four words of both pixels' group in one LDM (1 + 4 cycles against 2 LDRDs' 6, one instruction
     * fewer): its registers must ascend with the addresses, hence fixed ones, r8-r11 (x0a, x0b, x1a, x1b),
     * named in the text and clobbered (with r0-r3 or r4-r7 gcc -O1 finds no allocation for the rest) */
    int32_t e, o, t;
#define TVMGEN_MK_PAIR_STEP                                 \
            "ldmia %[cp]!, {r8, r9, r10, r11}\n\t"          \
            "ldrd %[e], %[o], [%[wq]], #8\n\t"              \
            "uxtb16 %[t], %[e]\n\t"                         \
            "smlad %[S0], r8, %[e], %[S0]\n\t"              \
            "smlad %[T0], r8, %[t], %[T0]\n\t"              \
            "smlad %[S1], r10, %[e], %[S1]\n\t"             \
            "smlad %[T1], r10, %[t], %[T1]\n\t"             \
            "uxtb16 %[t], %[o]\n\t"                         \
            "smlad %[S0], r9, %[o], %[S0]\n\t"              \
            "smlad %[T0], r9, %[t], %[T0]\n\t"              \
            "smlad %[S1], r11, %[o], %[S1]\n\t"             \
            "smlad %[T1], r11, %[t], %[T1]\n\t"
#define TVMGEN_MK_PAIR_OPERANDS                                                                          \
            : [S0] "+r"(S0), [T0] "+r"(T0), [S1] "+r"(S1), [T1] "+r"(T1), [cp] "+r"(cp), [wq] "+r"(wq),  \
              [n] "+r"(n),                                                                               \
              [e] "=&r"(e), [o] "=&r"(o), [t] "=&r"(t)                                                   \
            :                                                                                            \
            : "r8", "r9", "r10", "r11", "memory", "cc"
    /* two steps per iteration, an odd last step after the loop, no loop at all for one or two steps */
    int32_t n = K4 / 8;
    if (K4 == 4) {
      __asm__ volatile(TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_OPERANDS);
    } else if (K4 == 8) {
      __asm__ volatile(TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_OPERANDS);
    } else if ((K4 & 7) == 0) {
      __asm__ volatile("1:\n\t" TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_STEP "subs %[n], %[n], #1\n\tbne 1b"
                       TVMGEN_MK_PAIR_OPERANDS);
    } else {
      __asm__ volatile("1:\n\t" TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_STEP "subs %[n], %[n], #1\n\tbne 1b\n\t"
                       TVMGEN_MK_PAIR_STEP TVMGEN_MK_PAIR_OPERANDS);
    }
#undef TVMGEN_MK_PAIR_STEP
#undef TVMGEN_MK_PAIR_OPERANDS
    rp = wq;
#else
    for (int32_t k = 0; k < K4; k += 4) {
      const uint8_t* wg = (const uint8_t*)wp + k * 2;
      for (int32_t j = 0; j < 4; j++) {
        const int32_t q = (j & 1) * 4 + (j >> 1) * 2;   /* input j of the group: word j & 1, halfword j >> 1 */
#if TVMGEN_MK_DSP
        const int32_t x0 = col[k * 2 + (((j & 1) << 1) | (j >> 1))];
        const int32_t x1 = col[k * 2 + 4 + (((j & 1) << 1) | (j >> 1))];
#else
        const int32_t x0 = col[k + j], x1 = col[K4 + k + j];
#endif
        S0 += x0 * (wg[q] + 256 * (int8_t)wg[q + 1]);
        T0 += x0 * wg[q];
        S1 += x1 * (wg[q] + 256 * (int8_t)wg[q + 1]);
        T1 += x1 * wg[q];
      }
    }
#endif
    s00 += T0 - 128 * sx0;
    s10 += T1 - 128 * sx1;
    s01 += (int32_t)((uint32_t)S0 - (uint32_t)T0) >> 8;
    s11 += (int32_t)((uint32_t)S1 - (uint32_t)T1) >> 8;
  } else {
#if TVMGEN_MK_ASM
      const int16_t* cp = col;
      const int8_t* wq = wp;
      int32_t wa, wb, t;           /* x0a, x0b, x1a, x1b: r8-r11 (one LDM, as in the packed-pair loop above) */
      /* 16 MACs in 14 instructions: both pixels' groups in one LDM, both channels' weights in one LDRD; the
       * loop (counted down inside the asm) runs two such steps per iteration when K4 allows */
#define TVMGEN_MK_CONV_STEP                                 \
                "ldmia %[cp]!, {r8, r9, r10, r11}\n\t"      \
                "ldrd %[wa], %[wb], [%[wq]], #8\n\t"        \
                "sxtb16 %[t], %[wa]\n\t"                    \
                "sxtb16 %[wa], %[wa], ror #8\n\t"           \
                "smlad %[s00], %[t], r8, %[s00]\n\t"        \
                "smlad %[s10], %[t], r10, %[s10]\n\t"       \
                "smlad %[s00], %[wa], r9, %[s00]\n\t"       \
                "smlad %[s10], %[wa], r11, %[s10]\n\t"      \
                "sxtb16 %[t], %[wb]\n\t"                    \
                "sxtb16 %[wb], %[wb], ror #8\n\t"           \
                "smlad %[s01], %[t], r8, %[s01]\n\t"        \
                "smlad %[s11], %[t], r10, %[s11]\n\t"       \
                "smlad %[s01], %[wb], r9, %[s01]\n\t"       \
                "smlad %[s11], %[wb], r11, %[s11]\n\t"
#define TVMGEN_MK_CONV_OPERANDS                                                                           \
                : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [cp] "+r"(cp),      \
                  [wq] "+r"(wq), [n] "+r"(n), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)                \
                :                                                                                         \
                : "r8", "r9", "r10", "r11", "memory", "cc"
      int32_t n = K4 / 8;          /* the loop as in the packed-pair branch above */
      if (K4 == 4) {
        __asm__ volatile(TVMGEN_MK_CONV_STEP TVMGEN_MK_CONV_OPERANDS);
      } else if (K4 == 8) {
        __asm__ volatile(TVMGEN_MK_CONV_STEP TVMGEN_MK_CONV_STEP TVMGEN_MK_CONV_OPERANDS);
      } else if ((K4 & 7) == 0) {
        __asm__ volatile("1:\n\t" TVMGEN_MK_CONV_STEP TVMGEN_MK_CONV_STEP
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b"
                         TVMGEN_MK_CONV_OPERANDS);
      } else {
        __asm__ volatile("1:\n\t" TVMGEN_MK_CONV_STEP TVMGEN_MK_CONV_STEP
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         TVMGEN_MK_CONV_STEP
                         TVMGEN_MK_CONV_OPERANDS);
      }
#undef TVMGEN_MK_CONV_STEP
#undef TVMGEN_MK_CONV_OPERANDS
      rp = wq;
#else
      const int16_t* c0 = col;
      const int16_t* c1 = col + K4;
      for (int32_t k = 0; k < K4; k += 4) {
        const int8_t* wa = wp + k * 2;   /* [group][2 channels][4] */
        for (int32_t j = 0; j < 4; j++) {
          /* products in int32_t: int is 16 bits on AVR, and 2 (x - zp) * w reaches 65,280 */
          s00 += (int32_t)c0[k + j] * wa[j];
          s10 += (int32_t)c1[k + j] * wa[j];
          s01 += (int32_t)c0[k + j] * wa[4 + j];
          s11 += (int32_t)c1[k + j] * wa[4 + j];
        }
      }
#endif
  }
  /* both channels' fields in locals before the first store (a byte store may alias them, forcing reloads) */
  int32_t r0[8];
  tvmgen_mk_conv_rq(rp, r0);
  const int32_t m0 = r0[1], rs0 = r0[2], c0 = r0[3], m1 = r0[5], rs1 = r0[6], c1 = r0[7];
  const int32_t l0 = (flags & TVMGEN_RQ_LSHIFT) ? lsh[0] : 0, l1 = (flags & TVMGEN_RQ_LSHIFT) ? lsh[1] : 0;
  o0[0] = (int8_t)tvmgen_mk_requant_v(s00, m0, rs0, c0, l0, flags, ozp, lo, hi);
  if (two) o0[OC] = (int8_t)tvmgen_mk_requant_v(s10, m0, rs0, c0, l0, flags, ozp, lo, hi);
  if (second) {
    o0[1] = (int8_t)tvmgen_mk_requant_v(s01, m1, rs1, c1, l1, flags, ozp, lo, hi);
    if (two) o0[OC + 1] = (int8_t)tvmgen_mk_requant_v(s11, m1, rs1, c1, l1, flags, ozp, lo, hi);
  }
  return rp + 8 * sizeof(int32_t);
}

/* All output channels of two pixels (or of one: two = 0), with pointer increments only. */
TVMGEN_MK_INLINE void tvmgen_mk_conv_channels(const int16_t* col, const int8_t* w, const int8_t* lsh, int8_t* o0, int32_t OC, int32_t K4, int32_t two,
                                              int32_t flags, int32_t ozp, int32_t lo, int32_t hi) {
  int32_t sx0 = 0, sx1 = 0;          /* the columns' sums, for packed-pair weights */
  if (flags & TVMGEN_CONV_PAIR) {
    for (int32_t k = 0; k < K4; k += 4) {
#if TVMGEN_MK_DSP
      const int32_t* g = (const int32_t*)(const void*)(col + k * 2);
      sx0 = __smlad(g[0], 0x00010001, __smlad(g[1], 0x00010001, sx0));
      sx1 = __smlad(g[2], 0x00010001, __smlad(g[3], 0x00010001, sx1));
#else
      sx0 += col[k] + col[k + 1] + col[k + 2] + col[k + 3];
      sx1 += col[K4 + k] + col[K4 + k + 1] + col[K4 + k + 2] + col[K4 + k + 3];
#endif
    }
  }
  int8_t* const end = o0 + (OC & ~1);
  while (o0 != end) {
    w = tvmgen_mk_conv_pair(col, w, lsh, o0, OC, K4, two, 1, sx0, sx1, flags, ozp, lo, hi);
    o0 += 2;
    if (flags & TVMGEN_RQ_LSHIFT) lsh += 2;
  }
  if (OC & 1) tvmgen_mk_conv_pair(col, w, lsh, o0, OC, K4, two, 0, sx0, sx1, flags, ozp, lo, hi);
}

/* im2col of pixels p and q into the two columns of col */
TVMGEN_MK_INLINE void tvmgen_mk_im2col_pair(int16_t* col, const int8_t* x, int32_t p, int32_t q, int32_t H, int32_t W, int32_t C,
                                            int32_t OW, int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t DH, int32_t DW, int32_t PT,
                                            int32_t PL, int32_t izp, int32_t K4, int32_t M) {
#if TVMGEN_MK_DSP
  tvmgen_mk_im2col(col, 8, 0, x, p / OW, p % OW, H, W, C, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
  tvmgen_mk_im2col(col, 8, 4, x, q / OW, q % OW, H, W, C, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
#else
  tvmgen_mk_im2col(col, 4, 0, x, p / OW, p % OW, H, W, C, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
  tvmgen_mk_im2col(col + K4, 4, 0, x, q / OW, q % OW, H, W, C, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
#endif
}

/* CONV_2D (any kernel size, stride, dilation, padding), NHWC int8.  w: one stream of OC2/2 channel pairs (OC2 = OC
 * rounded up to even; 16-aligned), each its weights, [K4/4][2 channels][4] int8 or the packed-pair bytes (K4 =
 * KH*KW*C rounded up to a multiple of 4, zero-filled), then its two rows of the [OC2][4] int32 requantization
 * table (see tvmgen_mk_requant; bias without zero-point folding; microkernels.py conv_stream); col: scratch of
 * 2 * K4 int16, the columns of two pixels (interleaved by group with the DSP extension).  Two pixels x two
 * channels per step. */
TVMGEN_MK_INLINE int32_t tvmgen_mk_conv(const int8_t* x, const int8_t* w, const int8_t* lsh,
                                     int16_t* col, int8_t* out, int32_t H, int32_t W, int32_t C, int32_t OH, int32_t OW, int32_t OC,
                                     int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t DH, int32_t DW, int32_t PT, int32_t PL,
                                     int32_t izp, int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  const int32_t K4 = (KH * KW * C + 3) & ~3;
  const int32_t P = OH * OW;
  const int32_t M = (flags & TVMGEN_RQ_DOUBLED) ? 2 : 1;
  for (int32_t p = 0; p + 1 < P; p += 2) {
    tvmgen_mk_im2col_pair(col, x, p, p + 1, H, W, C, OW, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
    tvmgen_mk_conv_channels(col, w, lsh, out + p * OC, OC, K4, 1, flags, ozp, lo, hi);
  }
  if (P & 1) {   /* a lone last pixel: computed in both columns, stored once */
    tvmgen_mk_im2col_pair(col, x, P - 1, P - 1, H, W, C, OW, KH, KW, SH, SW, DH, DW, PT, PL, izp, K4, M);
    tvmgen_mk_conv_channels(col, w, lsh, out + (P - 1) * OC, OC, K4, 0, flags, ozp, lo, hi);
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * DEPTHWISE_CONV_2D with depth multiplier 1, NHWC int8.  w: int16 [C4/4][KH*KW][4]: for channel group g
 * and tap t the weights of channels 4g+0, 4g+2, 4g+1, 4g+3 (the pairs SXTB16 makes of the inputs), C4 = C
 * rounded up to 4, zero-filled; rq: [C4/4][4 fields][4 channels] with the input zero point folded into the bias (bias - zp *
 * sum(w)), so a padding tap reads `zrow` (C bytes of zp, scratch) and adds zp * w - zp * w = 0.  Output
 * pixels whose taps all lie inside the input use constant tap offsets; the others a table of tap rows. */
TVMGEN_MK_INLINE void tvmgen_mk_dw_pixel(const int8_t* const* tp, const int8_t* base, int32_t use_base,
                                         const int16_t* w, const int32_t* rq, const int8_t* lsh, int8_t* o,
                                         int32_t W, int32_t C, int32_t KH, int32_t KW, int32_t DH, int32_t DW, int32_t ozp,
                                         int32_t lo, int32_t hi, int32_t flags) {
  const int32_t T = KH * KW;
  int32_t g = 0;
  for (; g + 4 <= C; g += 4) {
    const int32_t* r = rq + g * 4;        /* [group][field][4 channels] */
    int32_t a0 = r[0], a1 = r[1], a2 = r[2], a3 = r[3];
    const int16_t* wg = w + g * T;
#if TVMGEN_MK_ASM
    const int16_t* wp = wg;
#endif
#pragma GCC unroll 25
    for (int32_t t = 0; t < T; t++) {
      const int8_t* px = use_base ? base + ((t / KW) * DH * W + (t % KW) * DW) * C + g : tp[t] + g;
#if TVMGEN_MK_ASM
      int32_t xv, xe, we, wo;
      /* 4 MACs in 8 instructions; the tap's row is an immediate offset inside the input */
      __asm__("ldr %[xv], %[px]\n\t"
              "ldrd %[we], %[wo], [%[wp]], #8\n\t"
              "sxtb16 %[xe], %[xv]\n\t"
              "sxtb16 %[xv], %[xv], ror #8\n\t"
              "smlabb %[a0], %[xe], %[we], %[a0]\n\t"
              "smlatt %[a2], %[xe], %[we], %[a2]\n\t"
              "smlabb %[a1], %[xv], %[wo], %[a1]\n\t"
              "smlatt %[a3], %[xv], %[wo], %[a3]"
              : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [wp] "+r"(wp),
                [xv] "=&r"(xv), [xe] "=&r"(xe), [we] "=&r"(we), [wo] "=&r"(wo)
              : [px] "m"(*(const int32_t*)(const void*)px));
#elif TVMGEN_MK_DSP
      int32_t xv = tvmgen_mk_ld4(px), xe, xo;
      const int32_t* wq = (const int32_t*)(const void*)(wg + t * 4);
      int32_t we = wq[0], wo = wq[1];
      xe = __sxtb16(xv);
      __asm__("sxtb16 %0, %1, ror #8" : "=r"(xo) : "r"(xv));
      a0 = __smlabb(xe, we, a0);
      a2 = __smlatt(xe, we, a2);
      a1 = __smlabb(xo, wo, a1);
      a3 = __smlatt(xo, wo, a3);
#else
      const int16_t* wt = wg + t * 4;
      a0 += (int32_t)px[0] * wt[0];      /* int32_t: x * 2w reaches 32,768 (int is 16 bits on AVR) */
      a2 += (int32_t)px[2] * wt[1];
      a1 += (int32_t)px[1] * wt[2];
      a3 += (int32_t)px[3] * wt[3];
#endif
    }
    o[g + 0] = (int8_t)tvmgen_mk_requant_s(a0, r, 4, lsh + g, flags, ozp, lo, hi);
    o[g + 1] = (int8_t)tvmgen_mk_requant_s(a1, r + 1, 4, lsh + g + 1, flags, ozp, lo, hi);
    o[g + 2] = (int8_t)tvmgen_mk_requant_s(a2, r + 2, 4, lsh + g + 2, flags, ozp, lo, hi);
    o[g + 3] = (int8_t)tvmgen_mk_requant_s(a3, r + 3, 4, lsh + g + 3, flags, ozp, lo, hi);
  }
  for (int32_t c = g; c < C; c++) {          /* channels after the last group of four */
    const int32_t j = c - g, q = (j & 1) ? 2 + (j >> 1) : (j >> 1);
    const int32_t* r = rq + g * 4 + j;
    int32_t a = r[0];
    for (int32_t t = 0; t < T; t++) {
      const int8_t* px = use_base ? base + ((t / KW) * DH * W + (t % KW) * DW) * C : tp[t];
      a += (int32_t)px[c] * w[g * T + t * 4 + q];
    }
    o[c] = (int8_t)tvmgen_mk_requant_s(a, r, 4, lsh + c, flags, ozp, lo, hi);
  }
}

/* Two horizontally adjacent interior pixels (the second SW * C bytes after the first) that share each weight load:
 * 8 MACs in 15 instructions per tap (one LDRD of weights, two input words) against 16, and each channel's
 * requantization fields loaded once for both pixels.  The fourteen registers this needs (eight sums, four
 * temporaries, the weight pointer and the input base) are all there are, so only optimised builds (-Og and up,
 * no frame pointer) use it, for windows up to 25 taps whose offsets are all LDR immediates (< 4096); elsewhere the
 * pixels go one by one (tvmgen_mk_dw_pair_fits).  In place (memplan.inplace_delta_depthwise, delta d <= first
 * input byte of pixel p's window - (p + 1) C for every p) this stays safe: when the pair writes group g of
 * pixel p + 1 (bytes up to (p + 1) C + g + 3 + d <= first + g + 3), the only reads still to come of pixel p
 * are its groups after g (bytes >= first + g + 4). */
#if TVMGEN_MK_ASM && defined(__OPTIMIZE__)
#define TVMGEN_MK_DW_PAIR 1
#else
#define TVMGEN_MK_DW_PAIR 0
#endif

TVMGEN_MK_INLINE int32_t tvmgen_mk_dw_pair_fits(int32_t W, int32_t C, int32_t KH, int32_t KW, int32_t SW, int32_t DH,
                                               int32_t DW) {
  return TVMGEN_MK_DW_PAIR && KH * KW <= 25 && ((KH - 1) * DH * W + (KW - 1) * DW + SW) * C + (C & ~3) <= 4095;
}

#if TVMGEN_MK_DW_PAIR
TVMGEN_MK_INLINE void tvmgen_mk_dw_pair(const int8_t* base, const int16_t* w, const int32_t* rq, const int8_t* lsh,
                                        int8_t* o, int32_t W, int32_t C, int32_t KH, int32_t KW, int32_t DH, int32_t DW,
                                        int32_t SW, int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  const int32_t T = KH * KW;
  int32_t g = 0;
  for (; g + 4 <= C; g += 4) {
    const int32_t* r = rq + g * 4;        /* [group][field][4 channels] */
    int32_t a0 = r[0], a1 = r[1], a2 = r[2], a3 = r[3];
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    const int16_t* wp = w + g * T;
    const int8_t* const xg = base + g;
    /* the taps written out (not a loop: -Og unrolls none, and the offsets must be constants); a tap t >= T is
     * dead code with offset 0 */
#define TVMGEN_MK_DW_OFF(t, sc) ((t) < T ? ((((t) / KW) * DH * W + ((t) % KW) * DW) * C + (sc)) : 0)
#define TVMGEN_MK_DW_PAIR_TAP(t)                                                                        \
    if ((t) < T) {                                                                                      \
      int32_t xv, xe, we, wo;                                                                           \
      __asm__("ldrd %[we], %[wo], [%[wp]], #8\n\t"                                                      \
              "ldr %[xv], [%[px], #%c[oa]]\n\t"                                                         \
              "sxtb16 %[xe], %[xv]\n\t"                                                                 \
              "sxtb16 %[xv], %[xv], ror #8\n\t"                                                         \
              "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                   \
              "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                   \
              "smlabb %[a1], %[xv], %[wo], %[a1]\n\t"                                                   \
              "smlatt %[a3], %[xv], %[wo], %[a3]\n\t"                                                   \
              "ldr %[xv], [%[px], #%c[ob]]\n\t"                                                         \
              "sxtb16 %[xe], %[xv]\n\t"                                                                 \
              "sxtb16 %[xv], %[xv], ror #8\n\t"                                                         \
              "smlabb %[b0], %[xe], %[we], %[b0]\n\t"                                                   \
              "smlatt %[b2], %[xe], %[we], %[b2]\n\t"                                                   \
              "smlabb %[b1], %[xv], %[wo], %[b1]\n\t"                                                   \
              "smlatt %[b3], %[xv], %[wo], %[b3]"                                                       \
              : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0), [b1] "+r"(b1), \
                [b2] "+r"(b2), [b3] "+r"(b3), [wp] "+r"(wp), [xv] "=&r"(xv), [xe] "=&r"(xe),           \
                [we] "=&r"(we), [wo] "=&r"(wo)                                                          \
              : [px] "r"(xg), [oa] "n"(TVMGEN_MK_DW_OFF(t, 0)), [ob] "n"(TVMGEN_MK_DW_OFF(t, SW * C)),  \
                "m"(*(const int8_t(*)[4096])xg));                                                       \
    }
    TVMGEN_MK_DW_PAIR_TAP(0) TVMGEN_MK_DW_PAIR_TAP(1) TVMGEN_MK_DW_PAIR_TAP(2) TVMGEN_MK_DW_PAIR_TAP(3)
    TVMGEN_MK_DW_PAIR_TAP(4) TVMGEN_MK_DW_PAIR_TAP(5) TVMGEN_MK_DW_PAIR_TAP(6) TVMGEN_MK_DW_PAIR_TAP(7)
    TVMGEN_MK_DW_PAIR_TAP(8) TVMGEN_MK_DW_PAIR_TAP(9) TVMGEN_MK_DW_PAIR_TAP(10) TVMGEN_MK_DW_PAIR_TAP(11)
    TVMGEN_MK_DW_PAIR_TAP(12) TVMGEN_MK_DW_PAIR_TAP(13) TVMGEN_MK_DW_PAIR_TAP(14) TVMGEN_MK_DW_PAIR_TAP(15)
    TVMGEN_MK_DW_PAIR_TAP(16) TVMGEN_MK_DW_PAIR_TAP(17) TVMGEN_MK_DW_PAIR_TAP(18) TVMGEN_MK_DW_PAIR_TAP(19)
    TVMGEN_MK_DW_PAIR_TAP(20) TVMGEN_MK_DW_PAIR_TAP(21) TVMGEN_MK_DW_PAIR_TAP(22) TVMGEN_MK_DW_PAIR_TAP(23)
    TVMGEN_MK_DW_PAIR_TAP(24)
#undef TVMGEN_MK_DW_PAIR_TAP
#undef TVMGEN_MK_DW_OFF
    /* channel j's fields in locals before the stores (a byte store may alias them, forcing reloads) */
#define TVMGEN_MK_DW_PAIR_OUT(j, a, b)                                                                  \
    {                                                                                                   \
      const int32_t m_ = r[4 + j], s_ = r[8 + j], k_ = r[12 + j];                                       \
      const int32_t l_ = (flags & TVMGEN_RQ_LSHIFT) ? lsh[g + j] : 0;                                   \
      const int32_t qa_ = tvmgen_mk_requant_v(a, m_, s_, k_, l_, flags, ozp, lo, hi);                   \
      const int32_t qb_ = tvmgen_mk_requant_v(b, m_, s_, k_, l_, flags, ozp, lo, hi);                   \
      o[g + j] = (int8_t)qa_;                                                                           \
      o[C + g + j] = (int8_t)qb_;                                                                       \
    }
    TVMGEN_MK_DW_PAIR_OUT(0, a0, b0)
    TVMGEN_MK_DW_PAIR_OUT(1, a1, b1)
    TVMGEN_MK_DW_PAIR_OUT(2, a2, b2)
    TVMGEN_MK_DW_PAIR_OUT(3, a3, b3)
#undef TVMGEN_MK_DW_PAIR_OUT
  }
  for (int32_t c = g; c < C; c++) {          /* channels after the last group of four, both pixels */
    const int32_t j = c - g, q = (j & 1) ? 2 + (j >> 1) : (j >> 1);
    const int32_t* r = rq + g * 4 + j;
    int32_t a = r[0], b = r[0];
    for (int32_t t = 0; t < T; t++) {
      const int8_t* px = base + ((t / KW) * DH * W + (t % KW) * DW) * C;
      const int32_t wt = w[g * T + t * 4 + q];
      a += (int32_t)px[c] * wt;
      b += (int32_t)px[SW * C + c] * wt;
    }
    o[c] = (int8_t)tvmgen_mk_requant_s(a, r, 4, lsh + c, flags, ozp, lo, hi);
    o[C + c] = (int8_t)tvmgen_mk_requant_s(b, r, 4, lsh + c, flags, ozp, lo, hi);
  }
}
#endif

TVMGEN_MK_INLINE int32_t tvmgen_mk_dwconv(const int8_t* x, const int16_t* w, const int32_t* rq,
                                       const int8_t* lsh, int8_t* zrow, int8_t* out, int32_t H, int32_t W, int32_t C,
                                       int32_t OH, int32_t OW, int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t DH, int32_t DW, int32_t PT,
                                       int32_t PL, int32_t izp, int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  const int32_t T = KH * KW;
  const int8_t* taps[TVMGEN_MK_MAX_TAPS];
  /* output rows/columns whose taps are all inside the input */
  int32_t oh_lo = (PT + SH - 1) / SH, ow_lo = (PL + SW - 1) / SW;
  int32_t oh_hi = (H - 1 + PT - (KH - 1) * DH) / SH + 1, ow_hi = (W - 1 + PL - (KW - 1) * DW) / SW + 1;
  if (H - 1 + PT - (KH - 1) * DH < 0) oh_hi = 0;
  if (W - 1 + PL - (KW - 1) * DW < 0) ow_hi = 0;
  memset(zrow, (int)izp, (size_t)C);
  for (int32_t oh = 0; oh < OH; oh++) {
    const int32_t row_in = oh >= oh_lo && oh < oh_hi;
    for (int32_t ow = 0; ow < OW; ow++) {
      int8_t* o = out + (oh * OW + ow) * C;
      if (row_in && ow >= ow_lo && ow < ow_hi) {
        /* the row's run of interior pixels: pointers stepped, no checks */
        const int8_t* base = x + ((oh * SH - PT) * W + (ow * SW - PL)) * C;
        int8_t* const o_end = o + (ow_hi - ow) * C;
#if TVMGEN_MK_DW_PAIR
        if (tvmgen_mk_dw_pair_fits(W, C, KH, KW, SW, DH, DW)) {
          for (; o_end - o >= 2 * C; o += 2 * C, base += 2 * SW * C)
            tvmgen_mk_dw_pair(base, w, rq, lsh, o, W, C, KH, KW, DH, DW, SW, ozp, lo, hi, flags);
        }
#endif
        for (; o != o_end; o += C, base += SW * C)
          tvmgen_mk_dw_pixel(taps, base, 1, w, rq, lsh, o, W, C, KH, KW, DH, DW, ozp, lo, hi, flags);
        ow = ow_hi - 1;
      } else {
        for (int32_t t = 0; t < T; t++) {
          int32_t ih = oh * SH + (t / KW) * DH - PT, iw = ow * SW + (t % KW) * DW - PL;
          taps[t] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x + (ih * W + iw) * C : zrow;
        }
        tvmgen_mk_dw_pixel(taps, x, 0, w, rq, lsh, o, W, C, KH, KW, DH, DW, ozp, lo, hi, flags);
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * DEPTHWISE_CONV_2D 3x3, stride S = 1 or 2 both ways, no dilation, depth multiplier 1, any C: through a ring of
 * four input rows re-laid channel-major (buf: [C][4 slots][WP] int8, WP a multiple of 4).  A slot holds one
 * padded input row: channel c's W values at columns PL .. PL + W - 1, every other column (and every padding row)
 * the input zero point, which the bias cancels (bias - zp * sum(w), see tvmgen_mk_dwconv), so border pixels go
 * through the same loop as interior ones.  Each input row is re-laid once, when the first output row that needs
 * it starts; output row oh is written after input rows up to oh * S - PT + 2 are in the ring
 * (microkernels.dw3_inplace_delta).  prm: [C][9] words = (w00, w02), (w10, w12), (w20, w22), (w01, w11),
 * (w21, 0) as int16 pairs (w_kh,kw), then bias, multiplier, rounding constant, right shift (tvmgen_mk_requant_v).
 * With the DSP extension one word load gives a channel's four consecutive row values x0..x3, SXTB16 makes
 * (x0, x2) and (x1, x3), and a row of two stride-1 outputs is SMLAD (x0, x2).(w0, w2) + x1 w1 and
 * SMLAD (x1, x3).(w0, w2) + x2 w1: 6 MACs in 7 instructions, and the unpacked row serves two output rows at once
 * (tvmgen_mk_dw3_chans2). */
#if TVMGEN_MK_DSP
TVMGEN_MK_INLINE int32_t tvmgen_mk_sxtb16_r8(int32_t v) {   /* bytes 1 and 3, sign-extended */
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
TVMGEN_MK_INLINE uint32_t tvmgen_mk_pkhbt16(uint32_t lo, uint32_t hi) {   /* lo[15:0] | hi[15:0] << 16 */
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
TVMGEN_MK_INLINE uint32_t tvmgen_mk_pkhtb16(uint32_t hi, uint32_t lo) {   /* lo[31:16] | hi[31:16] << 16 */
  uint32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(hi), "r"(lo));
  return r;
}
#endif

TVMGEN_MK_INLINE void tvmgen_mk_dw3_row(int8_t* slot, const int8_t* xr, int32_t W, int32_t C, int32_t CS, int32_t PL) {
  /* channel c's row at slot + c * CS */
  int8_t* d = slot + PL;
#if TVMGEN_MK_DSP
  if ((C & 3) == 0) {
    for (int32_t c = 0; c < C; c += 4) {
      const int8_t* s = xr + c;
      int8_t* d0 = d + c * CS;
      int32_t iw = 0;
      for (; iw + 4 <= W; iw += 4, s += 4 * C) {
        /* a 4x4 byte transpose: pixels p0..p3 of channels c..c+3 -> channel rows */
        const uint32_t p0 = (uint32_t)tvmgen_mk_ld4(s), p1 = (uint32_t)tvmgen_mk_ld4(s + C);
        const uint32_t p2 = (uint32_t)tvmgen_mk_ld4(s + 2 * C), p3 = (uint32_t)tvmgen_mk_ld4(s + 3 * C);
        const uint32_t t0 = tvmgen_mk_pkhbt16(p0, p2), t1 = tvmgen_mk_pkhbt16(p1, p3);   /* (c0 c1) of p0 | of p2 */
        const uint32_t t2 = tvmgen_mk_pkhtb16(p2, p0), t3 = tvmgen_mk_pkhtb16(p3, p1);   /* (c2 c3) of p0 | of p2 */
        const uint32_t r0 = __uxtb16(t0) | (__uxtb16(t1) << 8);
        const uint32_t r1 = __uxtb16((t0 >> 8) | (t0 << 24)) | (t1 & 0xff00ff00u);
        const uint32_t r2 = __uxtb16(t2) | (__uxtb16(t3) << 8);
        const uint32_t r3 = __uxtb16((t2 >> 8) | (t2 << 24)) | (t3 & 0xff00ff00u);
        memcpy(d0 + iw, &r0, 4);
        memcpy(d0 + CS + iw, &r1, 4);
        memcpy(d0 + 2 * CS + iw, &r2, 4);
        memcpy(d0 + 3 * CS + iw, &r3, 4);
      }
      for (; iw < W; iw++, s += C) {
        d0[iw] = s[0];
        d0[CS + iw] = s[1];
        d0[2 * CS + iw] = s[2];
        d0[3 * CS + iw] = s[3];
      }
    }
    return;
  }
#endif
  for (int32_t iw = 0; iw < W; iw++)
    for (int32_t c = 0; c < C; c++) d[c * CS + iw] = xr[iw * C + c];
}

/* one output row of every channel: rows 0, 1, 2 of the window at b0 + c * 4 WP, + O1, + O2 (constants at each
 * call, so the loads take immediate offsets) */
TVMGEN_MK_INLINE void tvmgen_mk_dw3_chans(const int8_t* b0, int32_t O1, int32_t O2, const int32_t* prm,
                                          const int8_t* lsh, int8_t* orow, int32_t C, int32_t OW, int32_t S, int32_t WP,
                                          int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  for (int32_t c = 0; c < C; c++) {
    const int8_t* p0 = b0 + c * 4 * WP;
    const int8_t* p1 = p0 + O1;
    const int8_t* p2 = p0 + O2;
    const int16_t* wc = (const int16_t*)(const void*)(prm + c * 9);
    const int32_t* r = prm + c * 9;
    const int32_t bias = r[5], m = r[6], k = r[7], sh = r[8];
    const int32_t l = (flags & TVMGEN_RQ_LSHIFT) ? lsh[c] : 0;
    int8_t* o = orow + c;
    int32_t n = 0;
#if TVMGEN_MK_DSP
    const int32_t* wq = (const int32_t*)(const void*)wc;   /* 20 bytes per channel: word-aligned */
    const int32_t w0 = wq[0], w1 = wq[1], w2 = wq[2], wm01 = wq[3], wm2 = wq[4];
#define TVMGEN_MK_DW3_E(v) __sxtb16(v)
#define TVMGEN_MK_DW3_O(v) tvmgen_mk_sxtb16_r8(v)
    if (S == 1) {
      for (; n + 2 <= OW; n += 2, o += 2 * C) {
        int32_t v, e, q, a, b;
        v = tvmgen_mk_ld4(p0 + n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w0, bias); b = __smlad(q, w0, bias); a = __smlabb(q, wm01, a); b = __smlatb(e, wm01, b);
        v = tvmgen_mk_ld4(p1 + n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w1, a); b = __smlad(q, w1, b); a = __smlabt(q, wm01, a); b = __smlatt(e, wm01, b);
        v = tvmgen_mk_ld4(p2 + n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w2, a); b = __smlad(q, w2, b); a = __smlabb(q, wm2, a); b = __smlatb(e, wm2, b);
        o[0] = (int8_t)tvmgen_mk_requant_v(a, m, sh, k, l, flags, ozp, lo, hi);
        o[C] = (int8_t)tvmgen_mk_requant_v(b, m, sh, k, l, flags, ozp, lo, hi);
      }
    } else {
      for (; n + 2 <= OW; n += 2, o += 2 * C) {
        /* outputs at columns 2n and 2n + 2: (x0, x2) and x1, then x2, x3 and x4 one by one */
        int32_t v, e, q, a, b;
        v = tvmgen_mk_ld4(p0 + 2 * n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w0, bias); a = __smlabb(q, wm01, a);
        b = __smlatb(e, w0, bias); b = __smlatb(q, wm01, b); b = __smlabt((int32_t)p0[2 * n + 4], w0, b);
        v = tvmgen_mk_ld4(p1 + 2 * n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w1, a); a = __smlabt(q, wm01, a);
        b = __smlatb(e, w1, b); b = __smlatt(q, wm01, b); b = __smlabt((int32_t)p1[2 * n + 4], w1, b);
        v = tvmgen_mk_ld4(p2 + 2 * n); e = TVMGEN_MK_DW3_E(v); q = TVMGEN_MK_DW3_O(v);
        a = __smlad(e, w2, a); a = __smlabb(q, wm2, a);
        b = __smlatb(e, w2, b); b = __smlatb(q, wm2, b); b = __smlabt((int32_t)p2[2 * n + 4], w2, b);
        o[0] = (int8_t)tvmgen_mk_requant_v(a, m, sh, k, l, flags, ozp, lo, hi);
        o[C] = (int8_t)tvmgen_mk_requant_v(b, m, sh, k, l, flags, ozp, lo, hi);
      }
    }
    for (; n < OW; n++, o += C) {   /* the last output of an odd row */
      int32_t v, a;
      v = tvmgen_mk_ld4(p0 + S * n);
      a = __smlad(TVMGEN_MK_DW3_E(v), w0, bias); a = __smlabb(TVMGEN_MK_DW3_O(v), wm01, a);
      v = tvmgen_mk_ld4(p1 + S * n);
      a = __smlad(TVMGEN_MK_DW3_E(v), w1, a); a = __smlabt(TVMGEN_MK_DW3_O(v), wm01, a);
      v = tvmgen_mk_ld4(p2 + S * n);
      a = __smlad(TVMGEN_MK_DW3_E(v), w2, a); a = __smlabb(TVMGEN_MK_DW3_O(v), wm2, a);
      o[0] = (int8_t)tvmgen_mk_requant_v(a, m, sh, k, l, flags, ozp, lo, hi);
    }
#undef TVMGEN_MK_DW3_E
#undef TVMGEN_MK_DW3_O
#else
    for (; n < OW; n++, o += C) {
      const int8_t* q0 = p0 + S * n;
      const int8_t* q1 = p1 + S * n;
      const int8_t* q2 = p2 + S * n;
      int32_t a = bias;   /* int32_t products: x * 2w reaches 32,768 (int is 16 bits on AVR) */
      a += (int32_t)q0[0] * wc[0] + (int32_t)q0[1] * wc[6] + (int32_t)q0[2] * wc[1];
      a += (int32_t)q1[0] * wc[2] + (int32_t)q1[1] * wc[7] + (int32_t)q1[2] * wc[3];
      a += (int32_t)q2[0] * wc[4] + (int32_t)q2[1] * wc[8] + (int32_t)q2[2] * wc[5];
      o[0] = (int8_t)tvmgen_mk_requant_v(a, m, sh, k, l, flags, ozp, lo, hi);
    }
#endif
  }
}

#if TVMGEN_MK_DSP
/* stride 1, two output rows of every channel at once: window rows 0..3 at b0 + c * 4 WP, + O1, + O2, + O3; each
 * input row's SXTB16 pair serves both output rows (2 x 2 outputs, 36 MACs: four loads, eight SXTB16, 24
 * multiply-accumulates) */
TVMGEN_MK_INLINE void tvmgen_mk_dw3_chans2(const int8_t* b0, int32_t O1, int32_t O2, int32_t O3, const int32_t* prm,
                                           const int8_t* lsh, int8_t* orow, int32_t C, int32_t OW,
                                           int32_t WP, int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  const int32_t RO = OW * C;   /* the second output row */
  int32_t NC = OW;             /* columns left for the C loop below */
#if TVMGEN_MK_ASM && defined(__OPTIMIZE__)
  /* The usual requantization (sums doubled, one SMMLAR, zero point in the rounding constant, int8 range) with
   * offsets that fit the immediates: the channels of a column pair in one Thumb-2 loop, 62 instructions per
   * 36 MACs: a channel's weights and bias, then its requantization fields, each one LDM from prm, eleven fixed
   * registers and three of the compiler's (p, o, pp), the loop's end in memory. */
  if ((flags & (TVMGEN_RQ_LSHIFT | TVMGEN_RQ_FAST | TVMGEN_RQ_ZP | TVMGEN_RQ_DOUBLED)) ==
          (TVMGEN_RQ_FAST | TVMGEN_RQ_ZP | TVMGEN_RQ_DOUBLED) &&
      lo == -128 && hi == 127 && O1 >= -255 && O2 >= -255 && O3 >= -255 && O1 <= 4095 && O2 <= 4095 &&
      O3 <= 4095 && 4 * WP <= 4095 && (OW + 1) * C <= 4095) {
    int32_t n = 0;
    for (; n + 2 <= OW; n += 2) {
      const int8_t* p = b0 + n;
      int8_t* o = orow + n * C;
      const int32_t* pp = prm;
      int8_t* const o_end = o + C;
      __asm__ volatile(
          "1:\n\t"
          "ldmia %[pp]!, {r3, r4, r5, r6, r8, r9}\n\t"   /* w0 w1 w2 wm01 wm2, bias in r9 (a1) */
          "ldr lr, [%[p]]\n\t"
          "sxtb16 r2, lr\n\t"
          "sxtb16 lr, lr, ror #8\n\t"
          "smlad r10, r2, r3, r9\n\t"
          "smlad r11, lr, r3, r9\n\t"
          "smlabb r10, lr, r6, r10\n\t"
          "smlatb r11, r2, r6, r11\n\t"
          "ldr lr, [%[p], #%c[o1]]\n\t"
          "sxtb16 r2, lr\n\t"
          "sxtb16 lr, lr, ror #8\n\t"
          "smlad r10, r2, r4, r10\n\t"
          "smlad r11, lr, r4, r11\n\t"
          "smlabt r10, lr, r6, r10\n\t"
          "smlatt r11, r2, r6, r11\n\t"
          "smlad r12, lr, r3, r9\n\t"
          "smlad r9, r2, r3, r9\n\t"
          "smlabb r9, lr, r6, r9\n\t"
          "smlatb r12, r2, r6, r12\n\t"
          "ldr lr, [%[p], #%c[o2]]\n\t"
          "sxtb16 r2, lr\n\t"
          "sxtb16 lr, lr, ror #8\n\t"
          "smlad r10, r2, r5, r10\n\t"
          "smlad r11, lr, r5, r11\n\t"
          "smlabb r10, lr, r8, r10\n\t"
          "smlatb r11, r2, r8, r11\n\t"
          "smlad r9, r2, r4, r9\n\t"
          "smlad r12, lr, r4, r12\n\t"
          "smlabt r9, lr, r6, r9\n\t"
          "smlatt r12, r2, r6, r12\n\t"
          "ldr lr, [%[p], #%c[o3]]\n\t"
          "sxtb16 r2, lr\n\t"
          "sxtb16 lr, lr, ror #8\n\t"
          "smlad r9, r2, r5, r9\n\t"
          "smlad r12, lr, r5, r12\n\t"
          "smlabb r9, lr, r8, r9\n\t"
          "smlatb r12, r2, r8, r12\n\t"
          "addw %[p], %[p], #%c[p4]\n\t"
          "ldmia %[pp]!, {r3, r4, r5}\n\t"                /* multiplier, rounding constant, right shift */
          "add r2, r4, r11, asr #31\n\t"
          "smmlar r11, r11, r3, r2\n\t"
          "asr r11, r11, r5\n\t"
          "ssat r11, #8, r11\n\t"
          "strb r11, [%[o], #%c[oc]]\n\t"
          "add r2, r4, r9, asr #31\n\t"
          "smmlar r9, r9, r3, r2\n\t"
          "asr r9, r9, r5\n\t"
          "ssat r9, #8, r9\n\t"
          "strb r9, [%[o], #%c[or]]\n\t"
          "add r2, r4, r12, asr #31\n\t"
          "smmlar r12, r12, r3, r2\n\t"
          "asr r12, r12, r5\n\t"
          "ssat r12, #8, r12\n\t"
          "strb r12, [%[o], #%c[orc]]\n\t"
          "add r2, r4, r10, asr #31\n\t"
          "smmlar r10, r10, r3, r2\n\t"
          "asr r10, r10, r5\n\t"
          "ssat r10, #8, r10\n\t"
          "strb r10, [%[o]], #1\n\t"
          "ldr r2, %[oend]\n\t"
          "cmp %[o], r2\n\t"
          "bne 1b"
          : [p] "+r"(p), [o] "+r"(o), [pp] "+r"(pp)
          : [oend] "m"(o_end), [o1] "n"(O1), [o2] "n"(O2), [o3] "n"(O3), [p4] "n"(4 * WP), [oc] "n"(C),
            [or] "n"(OW * C), [orc] "n"(OW * C + C)
          : "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    }
    if (!(OW & 1)) return;
    /* the last column of an odd width: below, from column OW - 1 only */
    b0 += OW - 1;
    orow += (OW - 1) * C;
    NC = 1;
  }
#endif
  for (int32_t c = 0; c < C; c++) {
    const int8_t* p0 = b0 + c * 4 * WP;
    const int32_t* wq = prm + c * 9;
    const int32_t w0 = wq[0], w1 = wq[1], w2 = wq[2], wm01 = wq[3], wm2 = wq[4];
    const int32_t* r = prm + c * 9;
    const int32_t bias = r[5], m = r[6], k = r[7], sh = r[8];
    const int32_t l = (flags & TVMGEN_RQ_LSHIFT) ? lsh[c] : 0;
    int8_t* o = orow + c;
    const int8_t* const p_end = p0 + (NC & ~1);
    for (; p0 != p_end; p0 += 2, o += 2 * C) {
      int32_t v, e, q, a0, b0_, a1, b1;
      v = tvmgen_mk_ld4(p0); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w0, bias); b0_ = __smlad(q, w0, bias); a0 = __smlabb(q, wm01, a0); b0_ = __smlatb(e, wm01, b0_);
      v = tvmgen_mk_ld4(p0 + O1); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w1, a0); b0_ = __smlad(q, w1, b0_); a0 = __smlabt(q, wm01, a0); b0_ = __smlatt(e, wm01, b0_);
      a1 = __smlad(e, w0, bias); b1 = __smlad(q, w0, bias); a1 = __smlabb(q, wm01, a1); b1 = __smlatb(e, wm01, b1);
      v = tvmgen_mk_ld4(p0 + O2); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w2, a0); b0_ = __smlad(q, w2, b0_); a0 = __smlabb(q, wm2, a0); b0_ = __smlatb(e, wm2, b0_);
      a1 = __smlad(e, w1, a1); b1 = __smlad(q, w1, b1); a1 = __smlabt(q, wm01, a1); b1 = __smlatt(e, wm01, b1);
      v = tvmgen_mk_ld4(p0 + O3); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a1 = __smlad(e, w2, a1); b1 = __smlad(q, w2, b1); a1 = __smlabb(q, wm2, a1); b1 = __smlatb(e, wm2, b1);
      o[0] = (int8_t)tvmgen_mk_requant_v(a0, m, sh, k, l, flags, ozp, lo, hi);
      o[C] = (int8_t)tvmgen_mk_requant_v(b0_, m, sh, k, l, flags, ozp, lo, hi);
      o[RO] = (int8_t)tvmgen_mk_requant_v(a1, m, sh, k, l, flags, ozp, lo, hi);
      o[RO + C] = (int8_t)tvmgen_mk_requant_v(b1, m, sh, k, l, flags, ozp, lo, hi);
    }
    if (NC & 1) {   /* the last output of odd rows, both rows */
      int32_t v, e, q, a0, a1;
      v = tvmgen_mk_ld4(p0); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w0, bias); a0 = __smlabb(q, wm01, a0);
      v = tvmgen_mk_ld4(p0 + O1); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w1, a0); a0 = __smlabt(q, wm01, a0);
      a1 = __smlad(e, w0, bias); a1 = __smlabb(q, wm01, a1);
      v = tvmgen_mk_ld4(p0 + O2); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a0 = __smlad(e, w2, a0); a0 = __smlabb(q, wm2, a0);
      a1 = __smlad(e, w1, a1); a1 = __smlabt(q, wm01, a1);
      v = tvmgen_mk_ld4(p0 + O3); e = __sxtb16(v); q = tvmgen_mk_sxtb16_r8(v);
      a1 = __smlad(e, w2, a1); a1 = __smlabb(q, wm2, a1);
      o[0] = (int8_t)tvmgen_mk_requant_v(a0, m, sh, k, l, flags, ozp, lo, hi);
      o[RO] = (int8_t)tvmgen_mk_requant_v(a1, m, sh, k, l, flags, ozp, lo, hi);
    }
  }
}
#define TVMGEN_MK_DW3_TWO 1
#else
#define TVMGEN_MK_DW3_TWO 0
#endif

TVMGEN_MK_INLINE int32_t tvmgen_mk_dw3(const int8_t* x, const int32_t* prm, const int8_t* lsh,
                                       int8_t* buf, int8_t* out, int32_t H, int32_t W, int32_t C, int32_t OH,
                                       int32_t OW, int32_t S, int32_t PT, int32_t PL, int32_t WP, int32_t izp,
                                       int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  /* buf: [C][4 slots][WP]; padded input row r (input row r - PT) in slot r % 4.  Output rows go two at a time at
   * stride 1 with the DSP extension (tvmgen_mk_dw3_chans2), else one at a time; either way r0 = oh * S is even
   * at every block, so the window's first row is in slot 0 or 2 */
  int32_t have = 0;            /* padded input rows [0, have) have been placed */
  memset(buf, (int)izp, (size_t)(4 * C * WP));
  for (int32_t oh = 0; oh < OH;) {
    const int32_t r0 = oh * S;
    const int32_t two = TVMGEN_MK_DW3_TWO && S == 1 && oh + 1 < OH;
    for (; have < r0 + 3 + two; have++) {
      int8_t* slot = buf + (have % 4) * WP;
      const int32_t ih = have - PT;
      if (ih >= 0 && ih < H) {
        tvmgen_mk_dw3_row(slot, x + ih * W * C, W, C, 4 * WP, PL);
      } else if (have >= 4) {  /* a bottom padding row where an input row was: back to zero points */
        for (int32_t c = 0; c < C; c++) memset(slot + c * 4 * WP + PL, (int)izp, (size_t)W);
      }
    }
    int8_t* const orow = out + oh * OW * C;
#if TVMGEN_MK_DW3_TWO
    if (two) {
      if (r0 & 2)
        tvmgen_mk_dw3_chans2(buf + 2 * WP, WP, -2 * WP, -WP, prm, lsh, orow, C, OW, WP, ozp, lo, hi, flags);
      else
        tvmgen_mk_dw3_chans2(buf, WP, 2 * WP, 3 * WP, prm, lsh, orow, C, OW, WP, ozp, lo, hi, flags);
      oh += 2;
      continue;
    }
#endif
    if (r0 % 4 == 0)
      tvmgen_mk_dw3_chans(buf, WP, 2 * WP, prm, lsh, orow, C, OW, S, WP, ozp, lo, hi, flags);
    else if (r0 % 4 == 2)
      tvmgen_mk_dw3_chans(buf + 2 * WP, WP, -2 * WP, prm, lsh, orow, C, OW, S, WP, ozp, lo, hi, flags);
    else if (r0 % 4 == 1)      /* odd r0: only one row at a time at stride 1 (no DSP) */
      tvmgen_mk_dw3_chans(buf + WP, WP, 2 * WP, prm, lsh, orow, C, OW, S, WP, ozp, lo, hi, flags);
    else
      tvmgen_mk_dw3_chans(buf + 3 * WP, -3 * WP, -2 * WP, prm, lsh, orow, C, OW, S, WP, ozp, lo, hi, flags);
    oh++;
  }
  return 0;
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_fc_direct(const int8_t* x, const int8_t* w, const int32_t* rq, int8_t* out,
                                          int32_t B, int32_t K, int32_t U, int32_t ozp, int32_t lo, int32_t hi,
                                          int32_t flags);

/* One output's four weights (word i of wp) against the input pairs (xe, xo): SXTB16 splits the weights the
 * same way, two SMLADs (tvmgen_mk_fc and tvmgen_mk_fc_direct, DSP path). */
#define TVMGEN_MK_FC_LANE(acc, i)                                  \
        wv = wp[i];                                                \
        we = __sxtb16(wv);                                         \
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(wo) : "r"(wv));     \
        acc = __smlad(we, xe, acc);                                \
        acc = __smlad(wo, xo, acc);

/* ------------------------------------------------------------------------------------------------------
 * FULLY_CONNECTED, int8, B rows of K inputs.  w: [U4/4][K4/4][4 outputs][4 inputs] int8 (U4, K4 = U, K
 * rounded up to 4, zero-filled); rq: [U4][4] in the
 * single-rounding form of tvmgen_mk_requant_single, bias without zero-point folding; col: scratch of K4 int16,
 * the row as (x - zp). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_fc(const int8_t* x, const int8_t* w, const int32_t* rq, int16_t* col,
                                   int8_t* out, int32_t B, int32_t K, int32_t U, int32_t izp, int32_t ozp, int32_t lo,
                                   int32_t hi, int32_t flags) {
  if (flags & TVMGEN_FC_DIRECT) return tvmgen_mk_fc_direct(x, w, rq, out, B, K, U, ozp, lo, hi, flags);
  const int32_t K4 = (K + 3) & ~3;
  for (int32_t b = 0; b < B; b++) {
    tvmgen_mk_im2col(col, 4, 0, x + b * K, 0, 0, 1, 1, K, 1, 1, 1, 1, 1, 1, 0, 0, izp, K4, 1);
    int8_t* o = out + b * U;
    for (int32_t u = 0; u < U; u += 4) {
      const int32_t* r = rq + u * 4;
      int32_t a0 = r[0], a1 = r[4], a2 = r[8], a3 = r[12];
      const int8_t* wq = w + u * K4;
#if TVMGEN_MK_ASM
      const int16_t* cp = col;
      const int8_t* wp = wq;
      int32_t n = K4 / 4, xa, xb, wa, wb, t;
      /* 16 MACs in 19 instructions: the row's four inputs once, four outputs' weights in two LDRDs */
      __asm__ volatile("1:\n\t"
                "ldrd %[xa], %[xb], [%[cp]], #8\n\t"
                "ldrd %[wa], %[wb], [%[wp]], #8\n\t"
                "sxtb16 %[t], %[wa]\n\t"
                "sxtb16 %[wa], %[wa], ror #8\n\t"
                "smlad %[a0], %[t], %[xa], %[a0]\n\t"
                "smlad %[a0], %[wa], %[xb], %[a0]\n\t"
                "sxtb16 %[t], %[wb]\n\t"
                "sxtb16 %[wb], %[wb], ror #8\n\t"
                "smlad %[a1], %[t], %[xa], %[a1]\n\t"
                "smlad %[a1], %[wb], %[xb], %[a1]\n\t"
                "ldrd %[wa], %[wb], [%[wp]], #8\n\t"
                "sxtb16 %[t], %[wa]\n\t"
                "sxtb16 %[wa], %[wa], ror #8\n\t"
                "smlad %[a2], %[t], %[xa], %[a2]\n\t"
                "smlad %[a2], %[wa], %[xb], %[a2]\n\t"
                "sxtb16 %[t], %[wb]\n\t"
                "sxtb16 %[wb], %[wb], ror #8\n\t"
                "smlad %[a3], %[t], %[xa], %[a3]\n\t"
                "smlad %[a3], %[wb], %[xb], %[a3]\n\t"
                "subs %[n], %[n], #1\n\t"
                "bne 1b"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [cp] "+r"(cp), [wp] "+r"(wp),
                  [n] "+r"(n), [xa] "=&r"(xa), [xb] "=&r"(xb), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "memory", "cc");
#elif TVMGEN_MK_DSP
      const int32_t* cp = (const int32_t*)(const void*)col;
      const int32_t* wp = (const int32_t*)(const void*)wq;
      for (int32_t k = 0; k < K4; k += 4) {
        int32_t xe = cp[0], xo = cp[1], wv, we, wo;
        cp += 2;
        TVMGEN_MK_FC_LANE(a0, 0)
        TVMGEN_MK_FC_LANE(a1, 1)
        TVMGEN_MK_FC_LANE(a2, 2)
        TVMGEN_MK_FC_LANE(a3, 3)
        wp += 4;
      }
#else
      for (int32_t k = 0; k < K4; k += 4) {
        for (int32_t j = 0; j < 4; j++) {
          const int32_t xv = col[k + j];
          const int8_t* wg = wq + k * 4 + j;
          a0 += xv * wg[0];
          a1 += xv * wg[4];
          a2 += xv * wg[8];
          a3 += xv * wg[12];
        }
      }
#endif
      o[u] = (int8_t)tvmgen_mk_requant_single(a0, r, ozp, lo, hi, flags);
      if (u + 1 < U) o[u + 1] = (int8_t)tvmgen_mk_requant_single(a1, r + 4, ozp, lo, hi, flags);
      if (u + 2 < U) o[u + 2] = (int8_t)tvmgen_mk_requant_single(a2, r + 8, ozp, lo, hi, flags);
      if (u + 3 < U) o[u + 3] = (int8_t)tvmgen_mk_requant_single(a3, r + 12, ozp, lo, hi, flags);
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * tvmgen_mk_fc with TVMGEN_FC_DIRECT (FULLY_CONNECTED where tvmgen_mk_fc_pair's bound does not hold): the same
 * weights ([U4/4][K4/4][4 outputs][4 inputs], zero-filled), the row read in place (four inputs per load, SXTB16
 * into the pairs (x0, x2), (x1, x3) that each output's weights meet), the input zero point folded into the
 * bias (rq: [U4][4] single rounding).  Two instructions more per 16 MACs than copying the whole row into K4
 * int16 of scratch first, and no scratch (micro_speech: 8,000 bytes of RAM). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_fc_direct(const int8_t* x, const int8_t* w, const int32_t* rq, int8_t* out,
                                          int32_t B, int32_t K, int32_t U, int32_t ozp, int32_t lo, int32_t hi,
                                          int32_t flags) {
  const int32_t K4 = (K + 3) & ~3, KF = K & ~3;
  for (int32_t b = 0; b < B; b++) {
    const int8_t* xr = x + b * K;
    int8_t* o = out + b * U;
    for (int32_t u = 0; u < U; u += 4) {
      const int32_t* r = rq + u * 4;
      int32_t a0 = r[0], a1 = r[4], a2 = r[8], a3 = r[12];
      const int8_t* wq = w + u * K4;
#if TVMGEN_MK_DSP
      const int32_t* wp = (const int32_t*)(const void*)wq;
      for (int32_t k = 0; k < KF; k += 4, wp += 4) {
        const int32_t xv = tvmgen_mk_ld4(xr + k);
        const int32_t xe = __sxtb16(xv);
        int32_t xo, wv, we, wo;
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(xo) : "r"(xv));
        TVMGEN_MK_FC_LANE(a0, 0)     /* the macro of tvmgen_mk_fc: (xe, xo) are the same pairs */
        TVMGEN_MK_FC_LANE(a1, 1)
        TVMGEN_MK_FC_LANE(a2, 2)
        TVMGEN_MK_FC_LANE(a3, 3)
      }
#else
      for (int32_t k = 0; k < KF; k += 4) {
        for (int32_t j = 0; j < 4; j++) {
          const int32_t xv = xr[k + j];
          const int8_t* wg = wq + k * 4 + j;
          a0 += xv * wg[0];
          a1 += xv * wg[4];
          a2 += xv * wg[8];
          a3 += xv * wg[12];
        }
      }
#endif
      for (int32_t k = KF; k < K; k++) {      /* the last K % 4 inputs */
        const int32_t xv = xr[k];
        const int8_t* wg = wq + KF * 4 + (k - KF);
        a0 += xv * wg[0];
        a1 += xv * wg[4];
        a2 += xv * wg[8];
        a3 += xv * wg[12];
      }
      o[u] = (int8_t)tvmgen_mk_requant_single(a0, r, ozp, lo, hi, flags);
      if (u + 1 < U) o[u + 1] = (int8_t)tvmgen_mk_requant_single(a1, r + 4, ozp, lo, hi, flags);
      if (u + 2 < U) o[u + 2] = (int8_t)tvmgen_mk_requant_single(a2, r + 8, ozp, lo, hi, flags);
      if (u + 3 < U) o[u + 3] = (int8_t)tvmgen_mk_requant_single(a3, r + 12, ozp, lo, hi, flags);
    }
  }
  return 0;
}

#undef TVMGEN_MK_FC_LANE

/* ------------------------------------------------------------------------------------------------------
 * FULLY_CONNECTED without a scratch buffer, two outputs per SMLAD: the weights of outputs 2p ("B") and 2p+1
 * ("A") for the same input share one halfword, B's as the unsigned low byte b' = w + 128 and A's as the
 * signed high byte, so the halfword is b' + 256 a.  With int8 inputs x paired by SXTB16:
 *   S = sum x (b' + 256 a)   (SMLAD on the raw weight word)
 *   T = sum x b'             (SMLAD on UXTB16 of it)
 * A's sum is (S - T) / 256 (exact modulo 2^32 while |A's sum| < 2^23, proven at codegen time) and B's is
 * T - 128 sum x.  Eight MACs cost one UXTB16 and two SMLADs per weight word instead of two SXTB16s and two
 * SMLADs.  w: [U4/4][K/4][2 pairs][2 words: inputs (k, k+2), (k+1, k+3)][b'/a bytes] for the whole groups,
 * then [U4/2][K%4][2: b', a] for the last K % 4 inputs; rq: [U4][4] single rounding, the input zero point
 * folded into the bias (the sums use x itself). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_fc_pair(const int8_t* x, const uint8_t* w, const int32_t* rq, int8_t* out,
                                        int32_t B, int32_t K, int32_t U, int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  /* TVMGEN_FC_PER_TENSOR: one multiplier for all outputs, read once into registers (out's int8 stores may alias
     the table, so the compiler would otherwise reload it per output) */
  const int32_t per_tensor = (flags & TVMGEN_FC_PER_TENSOR) != 0;
  const int32_t m = per_tensor ? rq[1] : 0, ts = per_tensor ? rq[2] : 0, hr = per_tensor ? rq[3] : 0;
  const int32_t K4 = K & ~3, KT = K - K4;
  const uint8_t* wt = w + ((U + 3) / 4) * K4 * 4;       /* tail weights */
  for (int32_t b = 0; b < B; b++) {
    const int8_t* xr = x + b * K;
    int32_t sx = 0;
    for (int32_t k = 0; k < K; k++) sx += xr[k];
    int8_t* o = out + b * U;
    for (int32_t u = 0; u < U; u += 4) {
      int32_t s0 = 0, t0 = 0, s1 = 0, t1 = 0;
      const uint8_t* wp = w + u * K4;
#if TVMGEN_MK_ASM
      if (K4) {
        const int8_t* xp = xr;
        int32_t n = K4 / 4, xv, xe, e, od, t;
#define TVMGEN_MK_FCP_STEP                             \
                  "ldr %[xv], [%[xp]], #4\n\t"         \
                  "sxtb16 %[xe], %[xv]\n\t"            \
                  "sxtb16 %[xv], %[xv], ror #8\n\t"    \
                  "ldrd %[e], %[od], [%[wp]], #8\n\t"  \
                  "uxtb16 %[t], %[e]\n\t"              \
                  "smlad %[s0], %[xe], %[e], %[s0]\n\t" \
                  "smlad %[t0], %[xe], %[t], %[t0]\n\t" \
                  "uxtb16 %[t], %[od]\n\t"             \
                  "smlad %[s0], %[xv], %[od], %[s0]\n\t" \
                  "smlad %[t0], %[xv], %[t], %[t0]\n\t" \
                  "ldrd %[e], %[od], [%[wp]], #8\n\t"  \
                  "uxtb16 %[t], %[e]\n\t"              \
                  "smlad %[s1], %[xe], %[e], %[s1]\n\t" \
                  "smlad %[t1], %[xe], %[t], %[t1]\n\t" \
                  "uxtb16 %[t], %[od]\n\t"             \
                  "smlad %[s1], %[xv], %[od], %[s1]\n\t" \
                  "smlad %[t1], %[xv], %[t], %[t1]\n\t"
#define TVMGEN_MK_FCP_OPERANDS                                                                             \
                  : [s0] "+r"(s0), [t0] "+r"(t0), [s1] "+r"(s1), [t1] "+r"(t1), [xp] "+r"(xp), [wp] "+r"(wp), \
                    [n] "+r"(n), [xv] "=&r"(xv), [xe] "=&r"(xe), [e] "=&r"(e), [od] "=&r"(od), [t] "=&r"(t)  \
                  :                                                                                        \
                  : "memory", "cc"
        if ((K4 & 7) == 0) {
          n = K4 / 8;
          __asm__ volatile("1:\n\t" TVMGEN_MK_FCP_STEP TVMGEN_MK_FCP_STEP "subs %[n], %[n], #1\n\tbne 1b"
                           TVMGEN_MK_FCP_OPERANDS);
        } else {
          __asm__ volatile("1:\n\t" TVMGEN_MK_FCP_STEP "subs %[n], %[n], #1\n\tbne 1b" TVMGEN_MK_FCP_OPERANDS);
        }
#undef TVMGEN_MK_FCP_STEP
#undef TVMGEN_MK_FCP_OPERANDS
      }
#else
      for (int32_t k = 0; k < K4; k += 4, wp += 16) {
        for (int32_t j = 0; j < 4; j++) {
          /* input k + j sits in word (j & 1), halfword (j >> 1) of each pair's 8 bytes */
          const int32_t q = (j & 1) * 4 + (j >> 1) * 2;
          const int32_t xv = xr[k + j];
          s0 += xv * (wp[q] + 256 * (int8_t)wp[q + 1]);
          t0 += xv * wp[q];
          s1 += xv * (wp[8 + q] + 256 * (int8_t)wp[8 + q + 1]);
          t1 += xv * wp[8 + q];
        }
      }
#endif
      for (int32_t k = 0; k < KT; k++) {       /* the last K % 4 inputs */
        const int32_t xv = xr[K4 + k];
        const uint8_t* p0 = wt + ((u / 2) * KT + k) * 2;
        const uint8_t* p1 = wt + ((u / 2 + 1) * KT + k) * 2;
        s0 += xv * (p0[0] + 256 * (int8_t)p0[1]);
        t0 += xv * p0[0];
        s1 += xv * (p1[0] + 256 * (int8_t)p1[1]);
        t1 += xv * p1[0];
      }
      if (per_tensor) {
        /* the biases [U4] after the one row {0, m, t - 32, hr}; (U & 3) == 0 is a literal test */
        const int32_t* bb = rq + 4 + u;
        const int32_t v0 = t0 - 128 * sx + bb[0], v1 = ((int32_t)((uint32_t)s0 - (uint32_t)t0) >> 8) + bb[1];
        const int32_t v2 = t1 - 128 * sx + bb[2], v3 = ((int32_t)((uint32_t)s1 - (uint32_t)t1) >> 8) + bb[3];
        o[u] = (int8_t)tvmgen_mk_requant_single_v(v0, m, ts, hr, ozp, lo, hi);
        if ((U & 3) == 0 || u + 1 < U) o[u + 1] = (int8_t)tvmgen_mk_requant_single_v(v1, m, ts, hr, ozp, lo, hi);
        if ((U & 3) == 0 || u + 2 < U) o[u + 2] = (int8_t)tvmgen_mk_requant_single_v(v2, m, ts, hr, ozp, lo, hi);
        if ((U & 3) == 0 || u + 3 < U) o[u + 3] = (int8_t)tvmgen_mk_requant_single_v(v3, m, ts, hr, ozp, lo, hi);
        continue;
      }
      const int32_t* r = rq + u * 4;
      o[u] = (int8_t)tvmgen_mk_requant_single(t0 - 128 * sx + r[0], r, ozp, lo, hi, flags);
      if (u + 1 < U)
        o[u + 1] = (int8_t)tvmgen_mk_requant_single(((int32_t)((uint32_t)s0 - (uint32_t)t0) >> 8) + r[4], r + 4,
                                                    ozp, lo, hi, flags);
      if (u + 2 < U) o[u + 2] = (int8_t)tvmgen_mk_requant_single(t1 - 128 * sx + r[8], r + 8, ozp, lo, hi, flags);
      if (u + 3 < U)
        o[u + 3] = (int8_t)tvmgen_mk_requant_single(((int32_t)((uint32_t)s1 - (uint32_t)t1) >> 8) + r[12],
                                                    r + 12, ozp, lo, hi, flags);
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * CONV_2D 16x8 (int16 activations, int8 weights, int64 bias: reference_integer_ops::ConvPerChannel for int16),
 * NHWC.  w: int16 [OC][K2], K2 = KH * KW * C rounded up to even (a zero after the last tap).  The sums are exact
 * in int32 (the codegen proves sum |w| * 32768 < 2^31 per channel, ops/int16.py): two int16 products per SMLAD,
 * two output channels sharing each input load; only the bias and TFLite's int64 MultiplyByQuantizedMultiplier
 * are 64-bit: (acc + bias) * red + 2^(ts - 1) >> ts, red the 16-bit reduced multiplier, ts = 15 - shift.
 * A pixel whose window lies inside the input, with DW = 1 and KW * C even, reads its KH input rows in place
 * (each row's KW * C values are contiguous); any other pixel copies its taps into col (K2 int16, padding taps
 * 0: a padding tap adds 0, as TFLite's does).  fast: see tvmgen_mk_rq16. */
TVMGEN_MK_INLINE void tvmgen_mk_dot16x2(const int16_t* x, const int16_t* w0, const int16_t* w1, int32_t n,
                                        int32_t* a0, int32_t* a1) {
  int32_t s0 = *a0, s1 = *a1, k = 0;
#if TVMGEN_MK_DSP
  /* int16 pairs as words through memcpy (col is written as int16 just before: no type-punned reads); a row of
     up to 8 words (n a literal) unrolls whole */
#pragma GCC unroll 8
  for (; k + 2 <= n; k += 2) {
    const int32_t xv = tvmgen_mk_ld4(x + k);
    s0 = __smlad(tvmgen_mk_ld4(w0 + k), xv, s0);
    s1 = __smlad(tvmgen_mk_ld4(w1 + k), xv, s1);
  }
#endif
  for (; k < n; k++) {
    s0 += (int32_t)x[k] * w0[k];
    s1 += (int32_t)x[k] * w1[k];
  }
  *a0 = s0;
  *a1 = s1;
}

/* fast: the codegen proved |acc + bias| < 2^31 and 15 <= t <= 31 for every channel, so (acc + bias) * red (< 2^46)
   is one SMULL, and its value after >> t (< 2^31) is the low word of the shifted 64 bits: (lo >> t) | (hi << (32 - t)) */
TVMGEN_MK_INLINE int16_t tvmgen_mk_rq16(int32_t acc, const int64_t* bias, int32_t red, int32_t t, int32_t lo, int32_t hi,
                                        int32_t fast) {
  int32_t r;
  if (fast) {
    const int64_t p = (int64_t)(acc + (int32_t)*bias) * red + ((int64_t)1 << (t - 1));
    r = (int32_t)(((uint32_t)p >> t) | ((uint32_t)(p >> 32) << (32 - t)));
  } else {
    const int64_t v = (((int64_t)acc + *bias) * red + ((int64_t)1 << (t - 1))) >> t;
    if (v < lo) return (int16_t)lo;
    if (v > hi) return (int16_t)hi;
    return (int16_t)v;
  }
  return (int16_t)(r < lo ? lo : (r > hi ? hi : r));
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_conv16(const int16_t* x, const int16_t* w, const int64_t* bias, const int32_t* red,
                                       const int32_t* ts, int16_t* col, int16_t* out, int32_t H, int32_t W,
                                       int32_t C, int32_t OH, int32_t OW, int32_t OC, int32_t KH, int32_t KW,
                                       int32_t SH, int32_t SW, int32_t DH, int32_t DW, int32_t PT, int32_t PL,
                                       int32_t lo, int32_t hi, int32_t fast) {
  const int32_t K = KH * KW * C, K2 = (K + 1) & ~1, L = KW * C;
  const int32_t rows_in_place = DW == 1 && (L & 1) == 0;
  for (int32_t oh = 0; oh < OH; oh++) {
    const int32_t ih0 = oh * SH - PT;
    for (int32_t ow = 0; ow < OW; ow++) {
      const int32_t iw0 = ow * SW - PL;
      const int32_t inside = ih0 >= 0 && ih0 + (KH - 1) * DH < H && iw0 >= 0 && iw0 + (KW - 1) * DW < W;
      const int32_t direct = rows_in_place && inside;
      if (!direct) {
        int16_t* cp = col;
        for (int32_t kh = 0; kh < KH; kh++) {
          const int32_t ih = ih0 + kh * DH;
          for (int32_t kw = 0; kw < KW; kw++, cp += C) {
            const int32_t iw = iw0 + kw * DW;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              for (int32_t c = 0; c < C; c++) cp[c] = 0;
            } else {
              const int16_t* xp = x + (ih * W + iw) * C;
              for (int32_t c = 0; c < C; c++) cp[c] = xp[c];
            }
          }
        }
        if (K2 > K) col[K] = 0;
      }
      int16_t* o = out + (oh * OW + ow) * OC;
      for (int32_t oc = 0; oc < OC; oc += 2) {
        const int16_t* w0 = w + oc * K2;
        const int16_t* w1 = oc + 1 < OC ? w0 + K2 : w0;     /* an odd last channel: its sum twice */
        int32_t a0 = 0, a1 = 0;
        if (direct) {
          for (int32_t kh = 0; kh < KH; kh++)
            tvmgen_mk_dot16x2(x + ((ih0 + kh * DH) * W + iw0) * C, w0 + kh * L, w1 + kh * L, L, &a0, &a1);
        } else {
          tvmgen_mk_dot16x2(col, w0, w1, K2, &a0, &a1);
        }
        o[oc] = tvmgen_mk_rq16(a0, bias + oc, red[oc], ts[oc], lo, hi, fast);
        if (oc + 1 < OC) o[oc + 1] = tvmgen_mk_rq16(a1, bias + oc + 1, red[oc + 1], ts[oc + 1], lo, hi, fast);
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * PAD / PADV2 of a 4-D one-byte tensor (int8 or uint8, batch 1, pads on H, W and C): runs of input bytes copied
 * and runs of the fill byte stored four at a time (word loads and stores through memcpy, unaligned allowed),
 * instead of one conditional element per output byte. */
TVMGEN_MK_INLINE void tvmgen_mk_fill(uint8_t* o, int32_t n, uint32_t word) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) memcpy(o + i, &word, 4);
  for (; i < n; i++) o[i] = (uint8_t)word;
}

TVMGEN_MK_INLINE void tvmgen_mk_copy(uint8_t* o, const uint8_t* x, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t v;
    memcpy(&v, x + i, 4);
    memcpy(o + i, &v, 4);
  }
  for (; i < n; i++) o[i] = x[i];
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_pad(const void* xv, void* ov, int32_t H, int32_t W, int32_t C, int32_t OH,
                                    int32_t OW, int32_t OC, int32_t PT, int32_t PL, int32_t PC, int32_t fill) {
  const uint8_t* x = (const uint8_t*)xv;
  uint8_t* o = (uint8_t*)ov;
  const uint32_t word = (uint32_t)(uint8_t)fill * 0x01010101u;
  const int32_t row = OW * OC;
  for (int32_t oh = 0; oh < OH; oh++, o += row) {
    const int32_t ih = oh - PT;
    if (ih < 0 || ih >= H) {
      tvmgen_mk_fill(o, row, word);
      continue;
    }
    const uint8_t* xr = x + ih * W * C;
    if (PC == 0 && OC == C) {           /* whole pixels: fill, the input row, fill */
      tvmgen_mk_fill(o, PL * C, word);
      tvmgen_mk_copy(o + PL * C, xr, W * C);
      tvmgen_mk_fill(o + (PL + W) * C, (OW - PL - W) * C, word);
      continue;
    }
    tvmgen_mk_fill(o, PL * OC, word);
    for (int32_t iw = 0; iw < W; iw++) {
      uint8_t* op = o + (PL + iw) * OC;
      tvmgen_mk_fill(op, PC, word);
      tvmgen_mk_copy(op + PC, xr + iw * C, C);
      tvmgen_mk_fill(op + PC + C, OC - PC - C, word);
    }
    tvmgen_mk_fill(o + (PL + W) * OC, (OW - PL - W) * OC, word);
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * MAX_POOL_2D, int8 NHWC (reference_integer_ops::MaxPool): the maximum over the window's taps that lie inside the
 * input, then the activation clamp.  With the DSP extension four channels at once: SSUB8 sets a GE flag per byte
 * where the tap is at least the running maximum and SEL takes those bytes (two instructions per four channels
 * and tap); the clamp likewise against lo and hi in every byte. */
TVMGEN_MK_INLINE int32_t tvmgen_mk_maxpool(const int8_t* x, int8_t* out, int32_t H, int32_t W, int32_t C, int32_t OH,
                                        int32_t OW, int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t PT,
                                        int32_t PL, int32_t lo, int32_t hi) {
#if TVMGEN_MK_ASM
  const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u, hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
#endif
  for (int32_t oh = 0; oh < OH; oh++) {
    const int32_t h0 = oh * SH - PT, hs = h0 > 0 ? h0 : 0, he = h0 + KH < H ? h0 + KH : H;
    for (int32_t ow = 0; ow < OW; ow++) {
      const int32_t w0 = ow * SW - PL, ws = w0 > 0 ? w0 : 0, we = w0 + KW < W ? w0 + KW : W;
      int8_t* o = out + (oh * OW + ow) * C;
      int32_t c = 0;
#if TVMGEN_MK_ASM
      for (; c + 4 <= C; c += 4) {
        uint32_t m = 0x80808080u, t;
        for (int32_t h = hs; h < he; h++) {
          const int8_t* p = x + (h * W + ws) * C + c;
          for (int32_t w = ws; w < we; w++, p += C) {
            const uint32_t v = (uint32_t)tvmgen_mk_ld4(p);
            __asm__("ssub8 %[t], %[v], %[m]\n\tsel %[m], %[v], %[m]" : [m] "+r"(m), [t] "=&r"(t) : [v] "r"(v)
                    : "cc");
          }
        }
        __asm__("ssub8 %[t], %[m], %[l]\n\tsel %[m], %[m], %[l]\n\t"
                "ssub8 %[t], %[h], %[m]\n\tsel %[m], %[m], %[h]"
                : [m] "+r"(m), [t] "=&r"(t) : [l] "r"(lo4), [h] "r"(hi4) : "cc");
        memcpy(o + c, &m, 4);
      }
#endif
      for (; c < C; c++) {
        int32_t m = -128;
        for (int32_t h = hs; h < he; h++)
          for (int32_t w = ws; w < we; w++) {
            const int32_t v = x[(h * W + w) * C + c];
            m = v > m ? v : m;
          }
        o[c] = (int8_t)(m < lo ? lo : (m > hi ? hi : m));
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * ADD / SUB of two int8 tensors of the output's shape: out = requant(ta[a] (+/-) tb[b]) with ta, tb the
 * 256-entry tables of each input's scaled value (ops/elementwise.py) indexed from -128, rq = {0, multiplier,
 * right shift, rounding constant} of the output scaling (tvmgen_mk_requant). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_add(const int8_t* a, const int8_t* b, const int32_t* ta, const int32_t* tb,
                                    const int32_t* rq, const int8_t* lsh, int8_t* out, int32_t N, int32_t subtract,
                                    int32_t ozp, int32_t lo, int32_t hi, int32_t flags) {
  const int32_t* ta0 = ta + 128;
  const int32_t* tb0 = tb + 128;
  /* the requantization fields read once (out's int8 stores may alias the table: the compiler would reload
     them per element), the table pointers opaque so that each lookup is one LDR [t, a, LSL #2] */
  const int32_t m = rq[1], r = rq[2], c = rq[3], l = (flags & TVMGEN_RQ_LSHIFT) ? lsh[0] : 0;
#if TVMGEN_MK_DSP
  __asm__("" : "+r"(ta0), "+r"(tb0));
#endif
  int32_t i = 0;
  for (; i + 2 <= N; i += 2) {     /* two elements per iteration: both read before either is written (in place) */
    const int32_t a0 = a[i], b0 = b[i], a1 = a[i + 1], b1 = b[i + 1];
    const int32_t s0 = subtract ? ta0[a0] - tb0[b0] : ta0[a0] + tb0[b0];
    const int32_t s1 = subtract ? ta0[a1] - tb0[b1] : ta0[a1] + tb0[b1];
    out[i] = (int8_t)tvmgen_mk_requant_v(s0, m, r, c, l, flags, ozp, lo, hi);
    out[i + 1] = (int8_t)tvmgen_mk_requant_v(s1, m, r, c, l, flags, ozp, lo, hi);
  }
  for (; i < N; i++) {
    const int32_t s = subtract ? ta0[a[i]] - tb0[b[i]] : ta0[a[i]] + tb0[b[i]];
    out[i] = (int8_t)tvmgen_mk_requant_v(s, m, r, c, l, flags, ozp, lo, hi);
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * AVERAGE_POOL_2D, int8 NHWC (reference_integer_ops::AveragePool): the int32 sum over the window's taps that lie
 * inside the input, divided by their count rounding half away from zero (C's truncating division), then the
 * activation clamp.  With the DSP extension four channels add at once, in the 16-bit lanes of two registers
 * (SXTAB16: channels 0, 2 and 1, 3), exact while a window has at most 255 taps (|sum| <= 255 * 128 < 2^15;
 * microkernels.py checks).  Interior pixels divide by the constant KH * KW (a multiply). */
TVMGEN_MK_INLINE int32_t tvmgen_mk_avg_div(int32_t s, int32_t n, int32_t lo, int32_t hi) {
  s = s > 0 ? (s + n / 2) / n : (s - n / 2) / n;
  return s < lo ? lo : (s > hi ? hi : s);
}

TVMGEN_MK_INLINE void tvmgen_mk_avgpool_px(const int8_t* x, int8_t* o, int32_t W, int32_t C, int32_t hs, int32_t he,
                                           int32_t ws, int32_t we, int32_t n, int32_t lo, int32_t hi) {
  int32_t c = 0;
#if TVMGEN_MK_DSP
  for (; c + 4 <= C; c += 4) {
    int32_t se = 0, so = 0;
#pragma GCC unroll 8
    for (int32_t h = hs; h < he; h++) {
      const int8_t* p = x + (h * W + ws) * C + c;
#pragma GCC unroll 8
      for (int32_t w = ws; w < we; w++, p += C) {
        const int32_t v = tvmgen_mk_ld4(p);
        se = __sxtab16(se, v);
        __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(so) : "r"(so), "r"(v));
      }
    }
    const int32_t c0 = tvmgen_mk_avg_div((int16_t)se, n, lo, hi), c2 = tvmgen_mk_avg_div(se >> 16, n, lo, hi);
    const int32_t c1 = tvmgen_mk_avg_div((int16_t)so, n, lo, hi), c3 = tvmgen_mk_avg_div(so >> 16, n, lo, hi);
    o[c] = (int8_t)c0;
    o[c + 1] = (int8_t)c1;
    o[c + 2] = (int8_t)c2;
    o[c + 3] = (int8_t)c3;
  }
#endif
  for (; c < C; c++) {
    int32_t s = 0;
    for (int32_t h = hs; h < he; h++)
      for (int32_t w = ws; w < we; w++) s += x[(h * W + w) * C + c];
    o[c] = (int8_t)tvmgen_mk_avg_div(s, n, lo, hi);
  }
}

TVMGEN_MK_INLINE int32_t tvmgen_mk_avgpool(const int8_t* x, int8_t* out, int32_t H, int32_t W, int32_t C, int32_t OH,
                                        int32_t OW, int32_t KH, int32_t KW, int32_t SH, int32_t SW, int32_t PT,
                                        int32_t PL, int32_t lo, int32_t hi) {
  for (int32_t oh = 0; oh < OH; oh++) {
    const int32_t h0 = oh * SH - PT, hs = h0 > 0 ? h0 : 0, he = h0 + KH < H ? h0 + KH : H;
    for (int32_t ow = 0; ow < OW; ow++) {
      const int32_t w0 = ow * SW - PL, ws = w0 > 0 ? w0 : 0, we = w0 + KW < W ? w0 + KW : W;
      int8_t* o = out + (oh * OW + ow) * C;
      if (hs == h0 && he == h0 + KH && ws == w0 && we == w0 + KW)    /* the whole window: constant bounds */
        tvmgen_mk_avgpool_px(x + (h0 * W + w0) * C, o, W, C, 0, KH, 0, KW, KH * KW, lo, hi);
      else
        tvmgen_mk_avgpool_px(x, o, W, C, hs, he, ws, we, (he - hs) * (we - ws), lo, hi);
    }
  }
  return 0;
}

#endif /* TVMGEN_MICROKERNELS_H_ */
