/* 512-point real FFT in Q15 fixed point (internal to kws_frontend). */
#ifndef KWS_FFT_H_
#define KWS_FFT_H_

#include "kws_frontend.h"

/*
 * Real FFT of time[0..511] (int16) into bins[0..256] (DC .. Nyquist). The arithmetic is the
 * classic scaled fixed-point scheme (radix-4 decimation in time with a divide-by-4 per stage,
 * then the split of the packed half-length complex FFT with a divide-by-2), so bin k holds
 * X[k] / 512 rounded the same way the micro frontend's FFT rounds it. `work` holds 256 values.
 * `time` and `bins` may share storage (they do in kws_frontend_state).
 */
void kws_fft_real512(const int16_t *time, kws_cpx16 *work, kws_cpx16 *bins);

#endif /* KWS_FFT_H_ */
