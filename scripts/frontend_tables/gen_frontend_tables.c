/*
 * Generates firmware/lib/kws_frontend/kws_frontend_tables.c: every constant table of the
 * kwstool feature front end, computed once on the host so that the board and the training
 * machine use identical integers (no libm calls on the device, nothing to drift).
 *
 * The formulas reproduce the public micro frontend's parameterisation
 * (tensorflow/lite/experimental/microfrontend: Hann window in Q12, mel filterbank 125-7500 Hz
 * with triangular weights in Q12, PCAN gain curve strength 0.95 / offset 80 / 21 gain bits, a
 * 128-segment log2 correction table, Q15 FFT twiddles). Float and double are used where that
 * design computes in float and double, so that rounding lands on the same integers.
 *
 * Build and run:  cc -O2 -o gen gen_frontend_tables.c -lm && ./gen > kws_frontend_tables.c
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* The parameters (band edges, PCAN curve, noise smoothing bits) come from the front end's header,
 * so the tables and the code that uses them cannot disagree. */
#include "../../firmware/lib/kws_frontend/kws_frontend.h"

#define SAMPLE_RATE KWS_FRONTEND_SAMPLE_RATE
#define WINDOW_MS KWS_FRONTEND_WINDOW_MS
#define NUM_CHANNELS KWS_FRONTEND_NUM_CHANNELS
#define FFT_SIZE KWS_FRONTEND_FFT_SIZE
#define SPECTRUM_SIZE (FFT_SIZE / 2 + 1)
#define LOWER_HZ ((float)KWS_FRONTEND_LOWER_BAND_HZ)
#define UPPER_HZ ((float)KWS_FRONTEND_UPPER_BAND_HZ)
#define WINDOW_BITS 12
#define FILTERBANK_BITS 12
#define PCAN_STRENGTH ((float)KWS_FRONTEND_PCAN_STRENGTH)
#define PCAN_OFFSET ((float)KWS_FRONTEND_PCAN_OFFSET)
#define PCAN_GAIN_BITS KWS_FRONTEND_PCAN_GAIN_BITS
#define NOISE_SMOOTHING_BITS KWS_FRONTEND_NOISE_SMOOTHING_BITS
#define WDF_BITS 32 /* wide dynamic function intervals */
#define Q15_MAX 32767

static float mel(float hz) { return 1127.0 * log1p(hz / 700.0); }

static int msb32(uint32_t x) {
  int n = 0;
  while (x) {
    ++n;
    x >>= 1;
  }
  return n;
}

static void print_array(const char *type, const char *name, const long *v, int n) {
  printf("const %s %s[%d] = {", type, name, n);
  for (int i = 0; i < n; ++i) printf("%s%ld,", (i % 12) ? " " : "\n    ", v[i]);
  printf("\n};\n\n");
}

static void window_table(void) {
  const int size = WINDOW_MS * SAMPLE_RATE / 1000;
  const float arg = M_PI * 2.0 / size;
  long v[KWS_FRONTEND_WINDOW_SAMPLES];
  for (int i = 0; i < size; ++i)
    v[i] = (long)floor(((1 << WINDOW_BITS) * (0.5 - 0.5 * cos(arg * (i + 0.5)))) + 0.5);
  print_array("int16_t", "kws_window_q12", v, size);
}

static void twiddle_tables(void) {
  const double pi = 3.141592653589793238462643383279502884197169399375105820974944;
  const int n = FFT_SIZE / 2; /* complex FFT length of the packed real FFT */
  long re[256], im[256];
  for (int i = 0; i < n; ++i) {
    double phase = -2 * pi * i / n;
    re[i] = (long)floor(.5 + Q15_MAX * cos(phase));
    im[i] = (long)floor(.5 + Q15_MAX * sin(phase));
  }
  print_array("int16_t", "kws_fft_twiddle_re", re, n);
  print_array("int16_t", "kws_fft_twiddle_im", im, n);
  for (int i = 0; i < n / 2; ++i) {
    double phase = -3.14159265358979323846264338327 * ((double)(i + 1) / n + .5);
    re[i] = (long)floor(.5 + Q15_MAX * cos(phase));
    im[i] = (long)floor(.5 + Q15_MAX * sin(phase));
  }
  print_array("int16_t", "kws_fft_real_twiddle_re", re, n / 2);
  print_array("int16_t", "kws_fft_real_twiddle_im", im, n / 2);
}

static void filterbank_tables(void) {
  const int nch1 = NUM_CHANNELS + 1;
  float center[NUM_CHANNELS + 1];
  const float mel_low = mel(LOWER_HZ), mel_hi = mel(UPPER_HZ);
  const float spacing = (mel_hi - mel_low) / ((float)nch1);
  for (int i = 0; i < nch1; ++i) center[i] = mel_low + (spacing * (i + 1));

  const float hz_per_bin = 0.5 * SAMPLE_RATE / ((float)SPECTRUM_SIZE - 1);
  const int start_index = 1.5 + LOWER_HZ / hz_per_bin;
  long starts[NUM_CHANNELS + 1], widths[NUM_CHANNELS + 1];
  long weights[SPECTRUM_SIZE], unweights[SPECTRUM_SIZE];
  int bin = start_index, end_index = start_index, nweights = 0;
  for (int ch = 0; ch < nch1; ++ch) {
    int f = bin;
    while (mel(f * hz_per_bin) <= center[ch]) ++f;
    starts[ch] = bin;
    widths[ch] = f - bin;
    const float denom = (ch == 0) ? mel_low : center[ch - 1];
    for (int k = bin; k < f; ++k) {
      const float w = (center[ch] - mel(k * hz_per_bin)) / (center[ch] - denom);
      weights[nweights] = (long)floor(w * (1 << FILTERBANK_BITS) + 0.5);
      unweights[nweights] = (long)floor((1.0 - w) * (1 << FILTERBANK_BITS) + 0.5);
      ++nweights;
    }
    if (f > end_index) end_index = f;
    bin = f;
  }
  printf("const int16_t kws_filterbank_start_bin = %d;\n", start_index);
  printf("const int16_t kws_filterbank_end_bin = %d;\n\n", end_index);
  print_array("int16_t", "kws_filterbank_channel_start", starts, nch1);
  print_array("int16_t", "kws_filterbank_channel_width", widths, nch1);
  printf("/* %d weights: bins kws_filterbank_start_bin .. kws_filterbank_end_bin-1 in order */\n",
         nweights);
  print_array("int16_t", "kws_filterbank_weight_q12", weights, nweights);
  print_array("int16_t", "kws_filterbank_unweight_q12", unweights, nweights);
}

static int16_t pcan_gain(int input_bits, uint32_t x) {
  const float xf = ((float)x) / ((uint32_t)1 << input_bits);
  const float g = ((uint32_t)1 << PCAN_GAIN_BITS) * powf(xf + PCAN_OFFSET, -PCAN_STRENGTH);
  if (g > 32767) return 32767;
  return (int16_t)(g + 0.5f);
}

static void pcan_table(void) {
  /* FFT 512: log-scale correction bits = msb(512) - 1 - FILTERBANK_BITS / 2 = 3 */
  const int correction_bits = msb32(FFT_SIZE) - 1 - FILTERBANK_BITS / 2;
  const int input_bits = NOISE_SMOOTHING_BITS - correction_bits;
  long lut[4 * WDF_BITS - 3] = {0};
  lut[0] = pcan_gain(input_bits, 0);
  lut[1] = pcan_gain(input_bits, 1);
  for (int interval = 2; interval <= WDF_BITS; ++interval) {
    const uint32_t x0 = (uint32_t)1 << (interval - 1);
    const uint32_t x1 = x0 + (x0 >> 1);
    const uint32_t x2 = (interval == WDF_BITS) ? x0 + (x0 - 1) : 2 * x0;
    const int32_t y0 = pcan_gain(input_bits, x0);
    const int32_t y1 = pcan_gain(input_bits, x1);
    const int32_t y2 = pcan_gain(input_bits, x2);
    const int32_t a1 = 4 * (y1 - y0) - (y2 - y0);
    const int32_t a2 = (y2 - y0) - a1;
    /* segment `interval` occupies [4*interval-6, 4*interval-4]; slot 4*interval-3 is unused */
    lut[4 * interval - 6] = y0;
    lut[4 * interval - 5] = (int16_t)a1;
    lut[4 * interval - 4] = (int16_t)a2;
  }
  print_array("int16_t", "kws_pcan_gain_lut", lut, 4 * WDF_BITS - 3);
}

static void log_table(void) {
  /* log2(1 + x) - x in Q16 at 128 segments: the correction added to the linear mantissa */
  long v[129];
  for (int i = 0; i <= 128; ++i) {
    const double x = i / 128.0;
    v[i] = lround(65536.0 * (log2(1.0 + x) - x));
  }
  print_array("uint16_t", "kws_log_correction_q16", v, 129);
}

int main(void) {
  printf("/* Generated by scripts/frontend_tables/gen_frontend_tables.c -- do not edit. */\n");
  printf("#include \"kws_frontend_tables.h\"\n\n");
  window_table();
  twiddle_tables();
  filterbank_tables();
  pcan_table();
  log_table();
  return 0;
}
