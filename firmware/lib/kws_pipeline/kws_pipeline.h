/*
 * kws_pipeline: audio -> features -> model -> recognizer, the part of the firmware that does
 * not touch hardware. The live loop (kws_listener) and the serial test mode (kws_session) both
 * drive one pipeline; the model itself is a callback (TFLite Micro on the board, the tflite-micro
 * Python interpreter behind the host board), so this code builds and runs anywhere.
 *
 * Per inference: the 49 x 40 int8 feature window is requantized to the model's input
 * (identity for the usual scale 1 / zero point 0) straight into the model's input buffer, the
 * model runs, each int8 output becomes a 0..255 score (kws_recognizer_score) and the
 * recognizer decides whether this is a detection. Timing (microseconds) of the front end and of
 * the model is accumulated for the periodic report.
 *
 * Portable C99, caller-owned state, no allocation.
 */
#ifndef KWS_PIPELINE_H_
#define KWS_PIPELINE_H_

#include <stddef.h>
#include <stdint.h>

#include "kws_feature_provider.h"
#include "kws_recognizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the model on input (KWS_FP_WINDOW_VALUES int8, already requantized) and writes
 * num_labels int8 outputs. Returns 0 on success. */
typedef int (*kws_model_invoke_fn)(void *ctx, const int8_t *input, int8_t *output);
/* A free-running microsecond clock (wraps at 2^32). */
typedef uint32_t (*kws_micros_fn)(void *ctx);

typedef struct {
  kws_model_invoke_fn invoke;
  kws_micros_fn micros; /* may be NULL: no timing */
  void *ctx;            /* passed to both callbacks */
  int8_t *model_input;  /* where to build the input (the model's tensor), or NULL */
  uint8_t num_labels;
  float input_scale; /* model input quantization */
  int32_t input_zero_point;
  float output_scale; /* model output quantization */
  int32_t output_zero_point;
  kws_recognizer_config recognizer; /* defaults for every reset */
} kws_pipeline_config;

typedef struct {
  uint32_t frames;       /* frames computed */
  uint32_t inferences;   /* model invocations */
  uint32_t feature_us;   /* total us in the front end */
  uint32_t inference_us; /* total us in the model */
  uint32_t inference_us_max;
  uint32_t model_errors; /* invocations that returned non-zero */
} kws_pipeline_stats;

typedef struct {
  uint32_t frame;        /* frames since reset when the model ran */
  uint32_t time_ms;      /* audio time at the end of the window */
  uint32_t invoke_us;    /* duration of this inference */
  const int8_t *raw;     /* num_labels model outputs */
  const uint8_t *scores; /* num_labels scores 0..255 */
  kws_recognition recognition;
} kws_pipeline_result;

typedef struct {
  kws_pipeline_config config;
  kws_feature_provider features;
  kws_recognizer recognizer;
  kws_pipeline_stats stats; /* since init; the caller may zero it */
  int8_t lut[256];
  uint8_t lut_identity;
  int32_t score_multiplier;
  int8_t own_input[KWS_FP_WINDOW_VALUES];
  int8_t raw[KWS_RECOGNIZER_MAX_LABELS];
  uint8_t scores[KWS_RECOGNIZER_MAX_LABELS];
} kws_pipeline;

/* Returns 0, or -1 for an invalid config (no invoke callback, bad labels or recognizer). */
int kws_pipeline_init(kws_pipeline *p, const kws_pipeline_config *config);

/* New stream: fresh features and recognizer; recognizer may override the defaults (NULL: keep).
 * Returns 0, or -1 when the override is invalid (then the defaults apply). */
int kws_pipeline_reset(kws_pipeline *p, const kws_recognizer_config *recognizer);

/* Like kws_feature_provider_feed, timed. Returns 1 when a frame completed. */
int kws_pipeline_feed(kws_pipeline *p, const int16_t *samples, size_t n, size_t *consumed);

/* Frames completed since reset. */
uint32_t kws_pipeline_frames(const kws_pipeline *p);

/* The newest frame, int8[40]. */
const int8_t *kws_pipeline_last_frame(const kws_pipeline *p);

/* Audio time since reset, ms. */
uint32_t kws_pipeline_time_ms(const kws_pipeline *p);

/* Run the model on the current window and the recognizer on its scores. Returns 1 for a
 * detection, 0 for none, -1 when the model failed (result then holds no scores). */
int kws_pipeline_infer(kws_pipeline *p, kws_pipeline_result *result);

#ifdef __cplusplus
}
#endif

#endif /* KWS_PIPELINE_H_ */
