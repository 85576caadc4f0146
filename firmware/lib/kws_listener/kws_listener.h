/*
 * kws_listener: the live loop -- microphone ring -> pipeline -> model at a fixed cadence.
 *
 * The audio provider (an interrupt or a reader task) writes the microphone into the ring; the
 * main loop calls kws_listener_step() as often as it can. Each step feeds *every* queued sample
 * to the pipeline, frame by frame, and runs the model exactly once every `infer_every` completed
 * frames (infer_every = inference_period_ms / 20 ms stride): when frame k with k % infer_every
 * == 0 completes, the model sees the window ending at that frame, then the step returns so the
 * caller can serve the serial port. The cadence is on audio time (frames), not on wall time,
 * so the results are those of the host replay (kwstool._native.recognize over the scores of
 * every infer_every-th frame), whatever the loop's timing.
 *
 * No audio is dropped in steady state as long as one inference plus the front end for
 * infer_every frames takes less than the inference period (the ring holds 0.5 s of slack).
 * When it takes longer the ring overflows: the period's STATS show dropped_samples > 0, and
 * the fix is a longer period (re-export with a larger KWS_INFERENCE_PERIOD_MS) or a faster
 * model.
 *
 * Statistics per reporting period (kws_listener_take_stats) and a microphone health check run
 * on every sample read: a whole second (KWS_LISTENER_MIC_CHECK_SAMPLES) of identical samples
 * (all zero: SILENT; any other constant: STUCK), of samples within one step of each other
 * (e.g. only -1 and 0: FLOATING, a data line left floating), or of mostly full-scale samples
 * (FULL_SCALE: noise from a floating or mis-clocked data line) sets the microphone status.
 *
 * Portable C99, caller-owned state, no allocation.
 */
#ifndef KWS_LISTENER_H_
#define KWS_LISTENER_H_

#include <stddef.h>
#include <stdint.h>

#include "kws_audio_ring.h"
#include "kws_pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/* one second of audio */
#define KWS_LISTENER_MIC_CHECK_SAMPLES KWS_FRONTEND_SAMPLE_RATE

typedef enum {
  KWS_MIC_UNKNOWN = 0, /* less than a second heard so far */
  KWS_MIC_OK,
  KWS_MIC_SILENT,    /* a second of exact zeros */
  KWS_MIC_STUCK,     /* a second of one constant non-zero value */
  KWS_MIC_FLOATING,  /* a second of values within 1 of each other (e.g. -1/0) */
  KWS_MIC_FULL_SCALE /* a second with over half the samples at full scale */
} kws_mic_status;

typedef struct {
  kws_pipeline *pipeline;
  kws_audio_ring *ring;
  uint32_t inference_period_ms; /* a positive multiple of the stride (KWS_FRONTEND_STRIDE_MS) */
} kws_listener_config;

typedef struct {
  uint32_t frames;     /* feature frames computed */
  uint32_t inferences; /* model invocations */
  uint32_t model_errors;
  uint32_t feature_us;       /* total */
  uint32_t inference_us;     /* total */
  uint32_t inference_us_max; /* the slowest inference of the period */
  uint32_t overruns;         /* ring writes that did not fit */
  uint32_t dropped_samples;  /* microphone samples lost to them */
  int32_t level_peak;        /* loudest |sample| read */
  uint32_t samples;          /* samples read from the ring */
} kws_listener_stats;

typedef struct {
  int16_t min, max;
  uint32_t count;      /* samples in the current check block */
  uint32_t full_scale; /* of them at |s| >= 32767 */
} kws_mic_check;

typedef struct {
  kws_listener_config config;
  uint32_t infer_every; /* frames per inference */
  int16_t chunk[KWS_FRONTEND_STRIDE_SAMPLES];
  size_t chunk_len, chunk_pos; /* samples read from the ring; of them fed */
  kws_listener_stats period;   /* the current reporting period */
  uint32_t base_overruns, base_dropped;
  kws_mic_check mic;
  kws_mic_status mic_status;
} kws_listener;

/* Returns 0, or -1 when the config lacks the pipeline or ring or the period is not a positive
 * multiple of the stride. Starts like kws_listener_restart. */
int kws_listener_init(kws_listener *l, const kws_listener_config *config);

/* New live stream (boot, or back from the serial test mode): drop what the ring holds, reset
 * the pipeline to its defaults and start a new reporting period. */
void kws_listener_restart(kws_listener *l);

/*
 * Feed the queued audio up to the next inference point and run the model there. Returns 1 when
 * the model ran (*result filled; result->recognition.detected for a detection), 0 when the ring
 * ran dry first, -1 when the model failed.
 */
int kws_listener_step(kws_listener *l, kws_pipeline_result *result);

/* The counters of the period that ends now (dropped samples and overruns read from the ring);
 * a new period starts. */
void kws_listener_take_stats(kws_listener *l, kws_listener_stats *out);

/* The microphone status of the last complete second (UNKNOWN before the first). */
kws_mic_status kws_listener_mic_status(const kws_listener *l);

/* A short name: "unknown", "ok", "silent", "stuck", "floating", "full_scale". */
const char *kws_mic_status_name(kws_mic_status status);

#ifdef __cplusplus
}
#endif

#endif /* KWS_LISTENER_H_ */
