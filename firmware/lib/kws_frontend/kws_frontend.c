/* kws_frontend: see kws_frontend.h. Stages, in order, for each 30 ms window:
 *   window -> scale to full range -> FFT -> power -> mel filterbank -> sqrt (undo the scale)
 *   -> noise reduction -> PCAN gain control -> log scale
 */
#include "kws_frontend.h"

#include <string.h>

#include "kws_fft.h"
#include "kws_fixed.h"
#include "kws_frontend_tables.h"

#define NCH KWS_FRONTEND_NUM_CHANNELS
#define WINDOW_BITS 12
#define FILTERBANK_BITS 12

/* Noise reduction: per-channel running noise estimate, subtracted with a floor. */
#define NOISE_BITS 14 /* fixed-point bits of the smoothing coefficients */
#define NOISE_SMOOTHING_BITS KWS_FRONTEND_NOISE_SMOOTHING_BITS
/* The coefficients in Q14, truncated (0.025 -> 409, 0.06 -> 983, 0.05 -> 819); folded at
 * compile time, no floating point at run time. */
#define NOISE_Q14(x) ((uint32_t)((x) * (double)(1u << NOISE_BITS)))
#define NOISE_EVEN_SMOOTHING NOISE_Q14(KWS_FRONTEND_NOISE_EVEN_SMOOTHING)
#define NOISE_ODD_SMOOTHING NOISE_Q14(KWS_FRONTEND_NOISE_ODD_SMOOTHING)
#define NOISE_MIN_REMAINING NOISE_Q14(KWS_FRONTEND_NOISE_MIN_SIGNAL_REMAINING)

/* PCAN (per-channel amplitude normalisation) */
#define PCAN_SNR_BITS 12
#define PCAN_OUTPUT_BITS 6
#define PCAN_GAIN_BITS KWS_FRONTEND_PCAN_GAIN_BITS

/* Log scale */
#define LOG_SCALE_BITS 16
#define LOG_SEGMENT_BITS 7
#define LOG_LN2_Q16 45426 /* ln(2) in Q16 */
#define LOG_OUTPUT_SHIFT KWS_FRONTEND_LOG_SCALE_SHIFT

/* The FFT's 1/512 scaling leaves this many bits to restore before the log (512 = 2^9):
 * msb(512) - 1 - FILTERBANK_BITS / 2. */
#define LOG_CORRECTION_BITS 3
#define PCAN_SNR_SHIFT (PCAN_GAIN_BITS - LOG_CORRECTION_BITS - PCAN_SNR_BITS)

void kws_frontend_init(kws_frontend_state *state) { memset(state, 0, sizeof(*state)); }

/* Bitwise integer square root with round-to-nearest, 32-bit operands. */
static uint32_t isqrt32(uint32_t num) {
  if (num == 0) return 0;
  uint32_t res = 0;
  const int top = (32 - kws_msb32(num)) | 1;
  uint32_t bit = 1u << (31 - top);
  for (int it = (31 - top) / 2 + 1; it > 0; --it) {
    if (num >= res + bit) {
      num -= res + bit;
      res = (res >> 1) + bit;
    } else {
      res >>= 1;
    }
    bit >>= 2;
  }
  if (num > res && res != 0xFFFF) ++res;
  return res;
}

/* The same for 64-bit operands; values below 2^32 take the 32-bit path (as the reference
 * design does, which rounds slightly differently near 2^32 -- kept for bit-exactness). */
static uint32_t isqrt64(uint64_t num) {
  if ((num >> 32) == 0) return isqrt32((uint32_t)num);
  uint64_t res = 0;
  const int top = (64 - kws_msb64(num)) | 1;
  uint64_t bit = 1ull << (63 - top);
  for (int it = (63 - top) / 2 + 1; it > 0; --it) {
    if (num >= res + bit) {
      num -= res + bit;
      res = (res >> 1) + bit;
    } else {
      res >>= 1;
    }
    bit >>= 2;
  }
  if (num > res && res != 0xFFFFFFFFull) ++res;
  return (uint32_t)res;
}

/* Window the 480 gathered samples into the FFT input, shifted up to use the full 16 bits.
 * Returns that shift (the sqrt stage shifts back down by it). */
static int window_and_scale(kws_frontend_state *s) {
  int16_t *x = s->fft.time;
  int32_t max_abs = 0;
  for (int i = 0; i < KWS_FRONTEND_WINDOW_SAMPLES; ++i) {
    const int16_t v = kws_wrap16(((int32_t)s->window[i] * kws_window_q12[i]) >> WINDOW_BITS);
    x[i] = v;
    const int32_t a = v < 0 ? -(int32_t)v : v;
    if (a <= 32767 && a > max_abs) max_abs = a; /* |-32768| does not fit int16: ignored */
  }
  const int shift = 15 - kws_msb32((uint32_t)max_abs);
  for (int i = 0; i < KWS_FRONTEND_WINDOW_SAMPLES; ++i)
    x[i] = kws_wrap16((int32_t)(((uint32_t)(uint16_t)x[i] << shift) & 0xFFFFu));
  for (int i = KWS_FRONTEND_WINDOW_SAMPLES; i < KWS_FRONTEND_FFT_SIZE; ++i) x[i] = 0;
  return shift;
}

/* Power spectrum into the 41 triangular mel channels (channel 0 only feeds channel 1's lower
 * slope). Each bin adds weight*power to its channel and (1-weight)*power to the next one. */
static void filterbank(kws_frontend_state *s) {
  const kws_cpx16 *bins = s->fft.bins;
  uint64_t carry = 0; /* the (1 - weight) share of the previous channel */
  int w = 0;
  for (int ch = 0; ch <= NCH; ++ch) {
    uint64_t acc = carry, next = 0;
    const int start = kws_filterbank_channel_start[ch];
    const int width = kws_filterbank_channel_width[ch];
    for (int k = start; k < start + width; ++k, ++w) {
      const int32_t re = bins[k].r, im = bins[k].i;
      const uint32_t p32 = (uint32_t)(re * re) + (uint32_t)(im * im);
      /* the power is held as int32 by the reference design; sign-extend as it does */
      const uint64_t power = (p32 & 0x80000000u) ? (0xFFFFFFFF00000000ull | p32) : p32;
      acc += (uint64_t)kws_filterbank_weight_q12[w] * power;
      next += (uint64_t)kws_filterbank_unweight_q12[w] * power;
    }
    s->channel_energy[ch] = acc;
    carry = next;
  }
}

static void noise_reduction(kws_frontend_state *s, uint32_t *signal) {
  for (int i = 0; i < NCH; ++i) {
    const uint32_t smoothing = (i & 1) ? NOISE_ODD_SMOOTHING : NOISE_EVEN_SMOOTHING;
    const uint32_t keep = (1u << NOISE_BITS) - smoothing;
    const uint32_t scaled = signal[i] << NOISE_SMOOTHING_BITS;
    uint32_t estimate =
        (uint32_t)(((uint64_t)scaled * smoothing + (uint64_t)s->noise_estimate[i] * keep) >>
                   NOISE_BITS);
    s->noise_estimate[i] = estimate;
    if (estimate > scaled) estimate = scaled;
    const uint32_t floor_value =
        (uint32_t)(((uint64_t)signal[i] * NOISE_MIN_REMAINING) >> NOISE_BITS);
    const uint32_t subtracted = (scaled - estimate) >> NOISE_SMOOTHING_BITS;
    signal[i] = subtracted > floor_value ? subtracted : floor_value;
  }
}

/* Gain as a function of the noise estimate: piecewise quadratic over octaves (the LUT holds
 * y0, a1, a2 per octave). */
static int16_t pcan_gain(uint32_t x) {
  if (x <= 2) return kws_pcan_gain_lut[x];
  const int interval = kws_msb32(x);
  const int16_t *seg = kws_pcan_gain_lut + 4 * interval - 6;
  const int32_t frac =
      (int32_t)(((interval < 11) ? (x << (11 - interval)) : (x >> (interval - 11))) & 0x3FF);
  int32_t r = ((int32_t)seg[2] * frac) >> 5;
  r += (int32_t)seg[1] * 32;
  r = kws_wrap32((int64_t)r * frac);
  r = (r + (1 << 14)) >> 15;
  r += seg[0];
  return kws_wrap16(r);
}

static void pcan(kws_frontend_state *s, uint32_t *signal) {
  for (int i = 0; i < NCH; ++i) {
    const uint32_t gain = (uint32_t)(int32_t)pcan_gain(s->noise_estimate[i]);
    const uint32_t snr = (uint32_t)(((uint64_t)signal[i] * gain) >> PCAN_SNR_SHIFT);
    if (snr < (2u << PCAN_SNR_BITS))
      signal[i] = (snr * snr) >> (2 + 2 * PCAN_SNR_BITS - PCAN_OUTPUT_BITS);
    else
      signal[i] = (snr >> (PCAN_SNR_BITS - PCAN_OUTPUT_BITS)) - (1u << PCAN_OUTPUT_BITS);
  }
}

/* Natural log in fixed point: log2 by leading-bit position plus a 128-segment interpolated
 * mantissa correction, times ln(2), then scaled by 2^LOG_OUTPUT_SHIFT. */
static uint32_t fixed_log(uint32_t x) {
  const uint32_t integer = (uint32_t)kws_msb32(x) - 1;
  int32_t frac = (int32_t)((int64_t)x - ((int64_t)1 << integer));
  if (integer < LOG_SCALE_BITS)
    frac <<= LOG_SCALE_BITS - integer;
  else
    frac >>= integer - LOG_SCALE_BITS;
  const uint32_t seg = (uint32_t)frac >> (LOG_SCALE_BITS - LOG_SEGMENT_BITS);
  const int32_t c0 = kws_log_correction_q16[seg];
  const int32_t c1 = kws_log_correction_q16[seg + 1];
  const int32_t seg_base = (int32_t)(seg << (LOG_SCALE_BITS - LOG_SEGMENT_BITS));
  const int32_t rel = ((c1 - c0) * (frac - seg_base)) >> LOG_SCALE_BITS;
  const uint32_t log2_q16 = (integer << LOG_SCALE_BITS) + (uint32_t)(frac + c0 + rel);
  const uint32_t round = 1u << (LOG_SCALE_BITS - 1);
  const uint32_t ln_q16 = (uint32_t)(((uint64_t)LOG_LN2_Q16 * log2_q16 + round) >> LOG_SCALE_BITS);
  return ((ln_q16 << LOG_OUTPUT_SHIFT) + round) >> LOG_SCALE_BITS;
}

static void compute_frame(kws_frontend_state *s, uint16_t out[NCH]) {
  const int shift = window_and_scale(s);
  kws_fft_real512(s->fft.time, s->fft_work, s->fft.bins);
  filterbank(s);

  uint32_t signal[NCH];
  for (int i = 0; i < NCH; ++i) signal[i] = isqrt64(s->channel_energy[i + 1]) >> shift;
  noise_reduction(s, signal);
  pcan(s, signal);
  for (int i = 0; i < NCH; ++i) {
    uint32_t v = signal[i] << LOG_CORRECTION_BITS;
    v = (v > 1) ? fixed_log(v) : 0;
    out[i] = (uint16_t)(v < 0xFFFFu ? v : 0xFFFFu);
  }
}

int kws_frontend_process(kws_frontend_state *state, const int16_t *samples, size_t n,
                         size_t *consumed, uint16_t out[NCH]) {
  size_t take = KWS_FRONTEND_WINDOW_SAMPLES - state->window_fill;
  if (take > n) take = n;
  memcpy(state->window + state->window_fill, samples, take * sizeof(int16_t));
  state->window_fill += (uint32_t)take;
  *consumed = take;
  if (state->window_fill < KWS_FRONTEND_WINDOW_SAMPLES) return 0;

  compute_frame(state, out);
  /* keep the last 10 ms: the next window starts one stride later */
  memmove(state->window, state->window + KWS_FRONTEND_STRIDE_SAMPLES,
          (KWS_FRONTEND_WINDOW_SAMPLES - KWS_FRONTEND_STRIDE_SAMPLES) * sizeof(int16_t));
  state->window_fill -= KWS_FRONTEND_STRIDE_SAMPLES;
  return 1;
}

void kws_frontend_to_int8(const uint16_t in[NCH], int8_t out[NCH]) {
  for (int i = 0; i < NCH; ++i) {
    int32_t v = (((int32_t)in[i] * 256) + 333) / 666 - 128;
    if (v < -128) v = -128;
    if (v > 127) v = 127;
    out[i] = (int8_t)v;
  }
}

size_t kws_frontend_clip_int8(kws_frontend_state *state, const int16_t *samples, size_t n,
                              int8_t *out, size_t max_frames) {
  size_t frames = 0;
  uint16_t raw[NCH];
  kws_frontend_init(state);
  while (n > 0 && frames < max_frames) {
    size_t used = 0;
    const int ready = kws_frontend_process(state, samples, n, &used, raw);
    samples += used;
    n -= used;
    if (ready) {
      kws_frontend_to_int8(raw, out + frames * NCH);
      ++frames;
    }
  }
  return frames;
}
