/* Fixed-point FFT for kws_frontend. See kws_fft.h. */
#include "kws_fft.h"

#include "kws_fixed.h"
#include "kws_frontend_tables.h"

#define HALF_N 256 /* complex FFT length */

/* Q15 multiply with round-half-up, as (a*b + 2^14) >> 15. */
static inline int16_t q15_round(int32_t product) { return kws_wrap16((product + (1 << 14)) >> 15); }

static inline kws_cpx16 cpx_scale(kws_cpx16 a, int32_t q15_factor) {
  kws_cpx16 r;
  r.r = q15_round((int32_t)a.r * q15_factor);
  r.i = q15_round((int32_t)a.i * q15_factor);
  return r;
}

static inline kws_cpx16 cpx_mul(kws_cpx16 a, int16_t br, int16_t bi) {
  kws_cpx16 r;
  r.r = q15_round((int32_t)a.r * br - (int32_t)a.i * bi);
  r.i = q15_round((int32_t)a.r * bi + (int32_t)a.i * br);
  return r;
}

static inline kws_cpx16 cpx_add(kws_cpx16 a, kws_cpx16 b) {
  kws_cpx16 r;
  r.r = kws_wrap16((int32_t)a.r + b.r);
  r.i = kws_wrap16((int32_t)a.i + b.i);
  return r;
}

static inline kws_cpx16 cpx_sub(kws_cpx16 a, kws_cpx16 b) {
  kws_cpx16 r;
  r.r = kws_wrap16((int32_t)a.r - b.r);
  r.i = kws_wrap16((int32_t)a.i - b.i);
  return r;
}

/* One radix-4 stage over m groups; twiddles advance by `tw_stride` per group. */
static void radix4_stage(kws_cpx16 *x, unsigned tw_stride, unsigned m) {
  const int32_t quarter = 32767 / 4;
  for (unsigned k = 0; k < m; ++k) {
    kws_cpx16 *p0 = x + k, *p1 = p0 + m, *p2 = p1 + m, *p3 = p2 + m;
    const unsigned t1 = k * tw_stride, t2 = 2 * t1, t3 = 3 * t1;
    const kws_cpx16 a0 = cpx_scale(*p0, quarter);
    const kws_cpx16 a1 = cpx_scale(*p1, quarter);
    const kws_cpx16 a2 = cpx_scale(*p2, quarter);
    const kws_cpx16 a3 = cpx_scale(*p3, quarter);
    const kws_cpx16 b1 = cpx_mul(a1, kws_fft_twiddle_re[t1], kws_fft_twiddle_im[t1]);
    const kws_cpx16 b2 = cpx_mul(a2, kws_fft_twiddle_re[t2], kws_fft_twiddle_im[t2]);
    const kws_cpx16 b3 = cpx_mul(a3, kws_fft_twiddle_re[t3], kws_fft_twiddle_im[t3]);
    const kws_cpx16 even_diff = cpx_sub(a0, b2);
    const kws_cpx16 even_sum = cpx_add(a0, b2);
    const kws_cpx16 odd_sum = cpx_add(b1, b3);
    const kws_cpx16 odd_diff = cpx_sub(b1, b3);
    *p2 = cpx_sub(even_sum, odd_sum);
    *p0 = cpx_add(even_sum, odd_sum);
    /* multiply odd_diff by -j for the forward transform */
    p1->r = kws_wrap16((int32_t)even_diff.r + odd_diff.i);
    p1->i = kws_wrap16((int32_t)even_diff.i - odd_diff.r);
    p3->r = kws_wrap16((int32_t)even_diff.r - odd_diff.i);
    p3->i = kws_wrap16((int32_t)even_diff.i + odd_diff.r);
  }
}

/*
 * Decimation in time, radix 4: the length-n transform of the samples in[start + j*stride]
 * (complex sample j = time[2*(..)], time[2*(..)+1]) is written to out[0..n-1].
 */
static void fft_recursive(kws_cpx16 *out, const int16_t *time, unsigned start, unsigned stride,
                          unsigned n) {
  const unsigned m = n / 4;
  if (m == 1) {
    for (unsigned q = 0; q < 4; ++q) {
      const unsigned idx = start + q * stride;
      out[q].r = time[2 * idx];
      out[q].i = time[2 * idx + 1];
    }
  } else {
    for (unsigned q = 0; q < 4; ++q)
      fft_recursive(out + q * m, time, start + q * stride, stride * 4, m);
  }
  radix4_stage(out, stride, m);
}

void kws_fft_real512(const int16_t *time, kws_cpx16 *work, kws_cpx16 *bins) {
  const int32_t half = 32767 / 2;
  /* The 512 real samples, read as 256 complex ones, through a 256-point complex FFT. */
  fft_recursive(work, time, 0, 1, HALF_N);

  /* Split the packed spectrum into the real signal's bins 0..256. */
  const kws_cpx16 dc = cpx_scale(work[0], half);
  bins[0].r = kws_wrap16((int32_t)dc.r + dc.i);
  bins[HALF_N].r = kws_wrap16((int32_t)dc.r - dc.i);
  bins[0].i = 0;
  bins[HALF_N].i = 0;
  for (unsigned k = 1; k <= HALF_N / 2; ++k) {
    kws_cpx16 fk = work[k];
    kws_cpx16 fnk;
    fnk.r = work[HALF_N - k].r;
    fnk.i = kws_wrap16(-(int32_t)work[HALF_N - k].i);
    fk = cpx_scale(fk, half);
    fnk = cpx_scale(fnk, half);
    const kws_cpx16 sum = cpx_add(fk, fnk);
    const kws_cpx16 diff = cpx_sub(fk, fnk);
    const kws_cpx16 tw =
        cpx_mul(diff, kws_fft_real_twiddle_re[k - 1], kws_fft_real_twiddle_im[k - 1]);
    /* bins k and N-k are written after both inputs were read (work and bins are distinct) */
    bins[k].r = kws_wrap16(((int32_t)sum.r + tw.r) >> 1);
    bins[k].i = kws_wrap16(((int32_t)sum.i + tw.i) >> 1);
    bins[HALF_N - k].r = kws_wrap16(((int32_t)sum.r - tw.r) >> 1);
    bins[HALF_N - k].i = kws_wrap16(((int32_t)tw.i - sum.i) >> 1);
  }
}
