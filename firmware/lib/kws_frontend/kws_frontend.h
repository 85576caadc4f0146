/*
 * kws_frontend: the micro_speech "micro frontend" feature extractor in portable C99.
 *
 * 16 kHz mono int16 audio in; every 20 ms (320 samples) a 30 ms window (480 samples) gives 40
 * log-mel channels: Hann window, 512-point fixed-point FFT, mel filterbank (125-7500 Hz), noise
 * reduction, PCAN gain control and a log scale -- all integer arithmetic, bit-exact with
 * TensorFlow's audio_microfrontend op at its defaults. kws_frontend_to_int8() maps a frame to the
 * int8 model input the way micro_speech does.
 *
 * No dynamic allocation, no global state, no host-only headers: the caller owns a
 * kws_frontend_state (about 3.5 KB, scratch included) and may run as many as it likes.
 * This file is the single source of truth: the firmware and the Python package (kwstool._native)
 * compile these same sources.
 */
#ifndef KWS_FRONTEND_H_
#define KWS_FRONTEND_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FRONTEND_SAMPLE_RATE 16000
#define KWS_FRONTEND_WINDOW_MS 30
#define KWS_FRONTEND_STRIDE_MS 20
#define KWS_FRONTEND_WINDOW_SAMPLES 480 /* 30 ms */
#define KWS_FRONTEND_STRIDE_SAMPLES 320 /* 20 ms */
#define KWS_FRONTEND_NUM_CHANNELS 40
#define KWS_FRONTEND_FFT_SIZE 512
#define KWS_FRONTEND_CLIP_SAMPLES 16000 /* one second */
#define KWS_FRONTEND_CLIP_FRAMES 49     /* 1 + (16000 - 480) / 320 */
#define KWS_FRONTEND_CLIP_FEATURES (KWS_FRONTEND_CLIP_FRAMES * KWS_FRONTEND_NUM_CHANNELS)

/*
 * The remaining parameters of the micro frontend (TensorFlow's audio_microfrontend defaults).
 * kws_frontend.c and scripts/frontend_tables/gen_frontend_tables.c use these; kwstool._native
 * exposes them and kwstool.core.frontend.FEATURE_PARAMS records them in every artifact. Changing
 * any of them changes the front-end hash, which invalidates prepared features and trained models.
 */
#define KWS_FRONTEND_LOWER_BAND_HZ 125  /* mel filterbank lower edge */
#define KWS_FRONTEND_UPPER_BAND_HZ 7500 /* mel filterbank upper edge */
/* Noise reduction: per-channel running noise estimate, subtracted with a floor. */
#define KWS_FRONTEND_NOISE_SMOOTHING_BITS 10 /* extra precision of the estimate */
#define KWS_FRONTEND_NOISE_EVEN_SMOOTHING 0.025
#define KWS_FRONTEND_NOISE_ODD_SMOOTHING 0.06
#define KWS_FRONTEND_NOISE_MIN_SIGNAL_REMAINING 0.05
/* PCAN (per-channel amplitude normalisation) gain curve */
#define KWS_FRONTEND_PCAN_STRENGTH 0.95
#define KWS_FRONTEND_PCAN_OFFSET 80.0
#define KWS_FRONTEND_PCAN_GAIN_BITS 21
/* Log scale: output = ln(signal) * 2^shift */
#define KWS_FRONTEND_LOG_SCALE_SHIFT 6

typedef struct {
  int16_t r;
  int16_t i;
} kws_cpx16;

typedef struct {
  /* Persistent state between calls. */
  int16_t window[KWS_FRONTEND_WINDOW_SAMPLES]; /* samples gathered for the next window */
  uint32_t window_fill;                        /* how many of them are valid */
  uint32_t noise_estimate[KWS_FRONTEND_NUM_CHANNELS];
  /* Scratch reused for every frame (kept here so stack use stays small and known). */
  union {
    int16_t time[KWS_FRONTEND_FFT_SIZE];           /* windowed, scaled FFT input */
    kws_cpx16 bins[KWS_FRONTEND_FFT_SIZE / 2 + 1]; /* FFT output, DC .. Nyquist */
  } fft;
  kws_cpx16 fft_work[KWS_FRONTEND_FFT_SIZE / 2];
  uint64_t channel_energy[KWS_FRONTEND_NUM_CHANNELS + 1];
} kws_frontend_state;

/* Reset to the start of a stream: empty window, zero noise estimates. */
void kws_frontend_init(kws_frontend_state *state);

/*
 * Feed up to n samples. Consumes samples until one frame is complete (or input runs out) and
 * stores the number consumed in *consumed. Returns 1 and fills out[40] with the frame's uint16
 * channel values when a frame completed, 0 otherwise. Call again with the rest of the input.
 */
int kws_frontend_process(kws_frontend_state *state, const int16_t *samples, size_t n,
                         size_t *consumed, uint16_t out[KWS_FRONTEND_NUM_CHANNELS]);

/* micro_speech's int8 mapping: clamp(((v * 256) + 333) / 666 - 128, -128, 127). */
void kws_frontend_to_int8(const uint16_t in[KWS_FRONTEND_NUM_CHANNELS],
                          int8_t out[KWS_FRONTEND_NUM_CHANNELS]);

/*
 * Convenience for whole clips: reset, run n samples, write up to max_frames int8 frames
 * (frame-major, 40 values each) to out. Returns the number of frames written.
 */
size_t kws_frontend_clip_int8(kws_frontend_state *state, const int16_t *samples, size_t n,
                              int8_t *out, size_t max_frames);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_H_ */
