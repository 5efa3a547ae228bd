#include <string.h>
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
