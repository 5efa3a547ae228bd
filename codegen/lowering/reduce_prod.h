/* The sequential loop REDUCE_PROD lowers to (codegen/lowering/ops/reduce.py, lower_reduce_prod).
 *
 * TFLite's quantized product (kernels/reduce.cc EvalQuantizedProd, reference_ops::QuantizedReduceProd) is not an
 * associative reduction: it requantizes after every multiplication, in the order the reference visits the input
 * (row-major), so it is written here as that loop:
 *   p = x0 - zp;  p = MBQM64(p * (xk - zp)) for every further element k;  out = clamp(MBQM64(p) + out_zp)
 * MBQM64 is TFLite's MultiplyByQuantizedMultiplier(int64_t x, ...): the multiplier reduced to 16 bits (rm) and one
 * rounding shift by 15 - shift (ts); reduce.py passes rm and ts, computed at codegen time.  The result is
 * truncated to 32 bits as the reference's static_cast does.
 * The input is seen as up to six dimensions; bit d of `mask` says that dimension d is reduced.  Everything is
 * int32_t / int64_t explicitly: `int` is 16 bits on AVR.
 */
#include <stdint.h>

static inline int32_t tvmgen_prod_mbqm64(int64_t x, int32_t rm, int32_t ts) {
  int64_t r = x * (int64_t)rm + ((int64_t)1 << (ts - 1));
  return (int32_t)(uint32_t)(uint64_t)(r >> ts);
}

static inline int32_t tvmgen_prod_s8(const int8_t* x, int8_t* y, int32_t d0, int32_t d1, int32_t d2, int32_t d3,
                                     int32_t d4, int32_t d5, int32_t mask, int32_t izp, int32_t ozp, int32_t rm,
                                     int32_t ts) {
  int32_t dims[6], stride[6], kd[6], kst[6], rd[6], rst[6], kc[6], rc[6];
  int32_t nk = 0, nr = 0, d, s = 1, nout = 1, nred = 1, o, k, base, off;
  dims[0] = d0; dims[1] = d1; dims[2] = d2; dims[3] = d3; dims[4] = d4; dims[5] = d5;
  for (d = 5; d >= 0; --d) { stride[d] = s; s *= dims[d]; }
  for (d = 0; d < 6; ++d) {
    if (mask & ((int32_t)1 << d)) { rd[nr] = dims[d]; rst[nr] = stride[d]; nred *= dims[d]; rc[nr++] = 0; }
    else { kd[nk] = dims[d]; kst[nk] = stride[d]; nout *= dims[d]; kc[nk++] = 0; }
  }
  base = 0;
  for (o = 0; o < nout; ++o) {
    int32_t p = 0, v;
    off = base;
    for (d = 0; d < nr; ++d) rc[d] = 0;
    for (k = 0; k < nred; ++k) {
      int32_t xv = (int32_t)x[off] - izp;
      p = k == 0 ? xv : tvmgen_prod_mbqm64((int64_t)p * (int64_t)xv, rm, ts);
      for (d = nr - 1; d >= 0; --d) {      /* the next reduced element, row-major */
        off += rst[d];
        if (++rc[d] < rd[d]) break;
        off -= rst[d] * rd[d];
        rc[d] = 0;
      }
    }
    v = tvmgen_prod_mbqm64((int64_t)p, rm, ts) + ozp;
    y[o] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    for (d = nk - 1; d >= 0; --d) {        /* the next output element, row-major */
      base += kst[d];
      if (++kc[d] < kd[d]) break;
      base -= kst[d] * kd[d];
      kc[d] = 0;
    }
  }
  return 0;
}
