/*
 * kws_recognizer: turns a stream of per-inference class scores into keyword detections.
 *
 * Each inference gives one score per label (0..255, the model's probability * 255, see
 * kws_recognizer_score()) and the audio time in ms at the end of the window it saw. Every rule
 * is expressed in audio time, so detection behaves the same at 2 or at 20 inferences per
 * second. On every new result the recognizer:
 *   1. drops the results that left the window: it keeps those with time_ms - t < average_window_ms;
 *   2. averages each label's score over the results kept (integer mean, rounded half up);
 *   3. takes the label with the highest average (lowest index on ties);
 *   4. reports a detection when that label is not ignored (silence/unknown), its average is
 *      >= thresholds[label], the results kept cover at least minimum_coverage_ms of audio
 *      (newest time - oldest time >= minimum_coverage_ms; 0: one result suffices), and no
 *      detection was reported in the last suppression_ms (for any label).
 * The coverage rule replaces micro_speech's "minimum count": with results every P ms, k results
 * cover (k - 1) * P ms, so the old minimum_count = 3 at P = 100 ms is minimum_coverage_ms = 200.
 * A coverage rule needs several results only as far as the audio needs them: one noisy
 * inference cannot trigger, whatever the inference rate.
 *
 * Limits: average_window_ms <= KWS_RECOGNIZER_MAX_WINDOW_MS, minimum_coverage_ms <
 * average_window_ms. The history holds KWS_RECOGNIZER_MAX_HISTORY results: enough for 20
 * inferences per second (every 50 ms) over the longest window; faster inference keeps the
 * newest KWS_RECOGNIZER_MAX_HISTORY results, so the effective window is shorter.
 * A time earlier than the previous one (a new stream) clears the history.
 *
 * Portable C99, no allocation, no globals: the caller owns the state. The firmware and the
 * Python package (kwstool._native) compile this same file.
 */
#ifndef KWS_RECOGNIZER_H_
#define KWS_RECOGNIZER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_RECOGNIZER_MAX_LABELS 32
/* the longest averaging window */
#define KWS_RECOGNIZER_MAX_WINDOW_MS 3000
/* the shortest inference period the history covers over the longest window (20 per second) */
#define KWS_RECOGNIZER_MIN_PERIOD_MS 50
#define KWS_RECOGNIZER_MAX_HISTORY (KWS_RECOGNIZER_MAX_WINDOW_MS / KWS_RECOGNIZER_MIN_PERIOD_MS + 4)

typedef struct {
  uint32_t average_window_ms;   /* results younger than this are averaged (1..MAX_WINDOW_MS) */
  uint32_t suppression_ms;      /* quiet time after a detection */
  uint32_t minimum_coverage_ms; /* audio the averaged results must span (< average_window_ms) */
  uint8_t thresholds[KWS_RECOGNIZER_MAX_LABELS]; /* per label: minimum averaged score, 0..255 */
  uint8_t num_labels;                            /* 1..KWS_RECOGNIZER_MAX_LABELS */
  uint32_t ignore_mask;                          /* bit i set: label i is never reported */
} kws_recognizer_config;

typedef struct {
  uint8_t label;        /* top label of the averaged scores */
  uint8_t score;        /* its averaged score, 0..255 */
  uint8_t count;        /* results in the window */
  uint8_t detected;     /* 1: this result is a detection */
  uint32_t time_ms;     /* time of the result */
  uint32_t coverage_ms; /* audio the results in the window span */
} kws_recognition;

typedef struct {
  kws_recognizer_config config;
  uint8_t scores[KWS_RECOGNIZER_MAX_HISTORY][KWS_RECOGNIZER_MAX_LABELS];
  uint32_t times[KWS_RECOGNIZER_MAX_HISTORY];
  uint32_t head;  /* index of the oldest result */
  uint32_t count; /* results held */
  uint32_t last_time;
  uint32_t last_detection_ms;
  uint8_t has_time;
  uint8_t has_detection;
} kws_recognizer;

/* Single-threshold convenience: every label's threshold set to threshold. */
void kws_recognizer_set_threshold(kws_recognizer_config *config, uint8_t threshold);

/* 1 when the config is usable: 1..KWS_RECOGNIZER_MAX_LABELS labels, 0 < window <=
 * KWS_RECOGNIZER_MAX_WINDOW_MS, minimum_coverage_ms < window. */
int kws_recognizer_config_valid(const kws_recognizer_config *config);

/* Checks the config and resets. Returns 0, or -1 (state untouched) for an invalid config. */
int kws_recognizer_init(kws_recognizer *r, const kws_recognizer_config *config);

/* Forget all results and the last detection (start of a new stream). */
void kws_recognizer_reset(kws_recognizer *r);

/*
 * Add one inference result: config.num_labels scores taken at time_ms. Fills *out (may be NULL)
 * and returns 1 for a detection, 0 otherwise.
 */
int kws_recognizer_process(kws_recognizer *r, const uint8_t *scores, uint32_t time_ms,
                           kws_recognition *out);

/*
 * Model output -> recognizer score: round(clamp((q - zero_point) * scale, 0, 1) * 255).
 * The multiplier is round(scale * 255 * 65536), computed once with
 * kws_recognizer_score_multiplier(); the rest is integer arithmetic, so every platform gives
 * the same scores.
 */
int32_t kws_recognizer_score_multiplier(float scale);
uint8_t kws_recognizer_score(int8_t q, int32_t zero_point, int32_t multiplier);

/* Bit i set for every label whose name starts with '_' (_silence_, _unknown_). */
uint32_t kws_recognizer_ignore_mask(const char *const *labels, size_t num_labels);

#ifdef __cplusplus
}
#endif

#endif /* KWS_RECOGNIZER_H_ */
