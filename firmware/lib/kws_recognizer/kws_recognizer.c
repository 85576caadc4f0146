/* kws_recognizer: see kws_recognizer.h. */
#include "kws_recognizer.h"

#include <string.h>

void kws_recognizer_set_threshold(kws_recognizer_config *config, uint8_t threshold) {
  memset(config->thresholds, threshold, sizeof(config->thresholds));
}

int kws_recognizer_config_valid(const kws_recognizer_config *config) {
  return config != NULL && config->num_labels > 0 &&
         config->num_labels <= KWS_RECOGNIZER_MAX_LABELS && config->average_window_ms > 0 &&
         config->average_window_ms <= KWS_RECOGNIZER_MAX_WINDOW_MS &&
         config->minimum_coverage_ms < config->average_window_ms;
}

int kws_recognizer_init(kws_recognizer *r, const kws_recognizer_config *config) {
  if (!kws_recognizer_config_valid(config)) return -1;
  r->config = *config;
  kws_recognizer_reset(r);
  return 0;
}

void kws_recognizer_reset(kws_recognizer *r) {
  r->head = 0;
  r->count = 0;
  r->last_time = 0;
  r->last_detection_ms = 0;
  r->has_time = 0;
  r->has_detection = 0;
}

int kws_recognizer_process(kws_recognizer *r, const uint8_t *scores, uint32_t time_ms,
                           kws_recognition *out) {
  const kws_recognizer_config *c = &r->config;
  if (r->has_time && time_ms < r->last_time) kws_recognizer_reset(r);
  r->has_time = 1;
  r->last_time = time_ms;

  /* append (dropping the oldest when full) */
  if (r->count == KWS_RECOGNIZER_MAX_HISTORY) {
    r->head = (r->head + 1) % KWS_RECOGNIZER_MAX_HISTORY;
    --r->count;
  }
  const uint32_t slot = (r->head + r->count) % KWS_RECOGNIZER_MAX_HISTORY;
  memcpy(r->scores[slot], scores, c->num_labels);
  r->times[slot] = time_ms;
  ++r->count;

  /* drop results that left the window: keep those with time_ms - t < window */
  while (r->count > 0 && time_ms - r->times[r->head] >= c->average_window_ms) {
    r->head = (r->head + 1) % KWS_RECOGNIZER_MAX_HISTORY;
    --r->count;
  }

  /* average and pick the top label (the newest result is always in the window) */
  uint32_t best_sum = 0;
  uint8_t best = 0;
  for (uint8_t label = 0; label < c->num_labels; ++label) {
    uint32_t sum = 0;
    for (uint32_t i = 0; i < r->count; ++i)
      sum += r->scores[(r->head + i) % KWS_RECOGNIZER_MAX_HISTORY][label];
    if (label == 0 || sum > best_sum) {
      best_sum = sum;
      best = label;
    }
  }
  const uint8_t average = (uint8_t)((best_sum + r->count / 2) / r->count);
  const uint32_t coverage = time_ms - r->times[r->head];

  int detected = !((c->ignore_mask >> best) & 1u) && average >= c->thresholds[best] &&
                 coverage >= c->minimum_coverage_ms &&
                 !(r->has_detection && time_ms - r->last_detection_ms < c->suppression_ms);
  if (detected) {
    r->has_detection = 1;
    r->last_detection_ms = time_ms;
  }
  if (out != NULL) {
    out->label = best;
    out->score = average;
    out->count = (uint8_t)r->count;
    out->detected = (uint8_t)detected;
    out->time_ms = time_ms;
    out->coverage_ms = coverage;
  }
  return detected;
}

int32_t kws_recognizer_score_multiplier(float scale) {
  if (!(scale > 0.0f)) return 0;
  const float m = scale * 255.0f * 65536.0f + 0.5f;
  if (m >= 2147483647.0f) return INT32_MAX;
  return (int32_t)m;
}

uint8_t kws_recognizer_score(int8_t q, int32_t zero_point, int32_t multiplier) {
  const int64_t d = (int64_t)q - zero_point;
  if (d <= 0 || multiplier <= 0) return 0;
  const int64_t v = (d * multiplier + 32768) >> 16;
  return (uint8_t)(v > 255 ? 255 : v);
}

uint32_t kws_recognizer_ignore_mask(const char *const *labels, size_t num_labels) {
  uint32_t mask = 0;
  for (size_t i = 0; i < num_labels && i < KWS_RECOGNIZER_MAX_LABELS; ++i) {
    if (labels[i] != NULL && labels[i][0] == '_') mask |= 1u << i;
  }
  return mask;
}
