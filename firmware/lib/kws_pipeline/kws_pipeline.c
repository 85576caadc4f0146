/* kws_pipeline: see kws_pipeline.h. */
#include "kws_pipeline.h"

#include <string.h>

static uint32_t now_us(const kws_pipeline *p) {
  return p->config.micros ? p->config.micros(p->config.ctx) : 0;
}

int kws_pipeline_init(kws_pipeline *p, const kws_pipeline_config *config) {
  if (config == NULL || config->invoke == NULL || config->num_labels == 0 ||
      config->num_labels > KWS_RECOGNIZER_MAX_LABELS ||
      config->recognizer.num_labels != config->num_labels) {
    return -1;
  }
  memset(p, 0, sizeof(*p));
  p->config = *config;
  if (kws_recognizer_init(&p->recognizer, &config->recognizer) != 0) return -1;
  p->lut_identity =
      (uint8_t)kws_feature_requant_lut(config->input_scale, config->input_zero_point, p->lut);
  p->score_multiplier = kws_recognizer_score_multiplier(config->output_scale);
  kws_feature_provider_reset(&p->features);
  return 0;
}

int kws_pipeline_reset(kws_pipeline *p, const kws_recognizer_config *recognizer) {
  int status = 0;
  kws_feature_provider_reset(&p->features);
  if (recognizer == NULL || kws_recognizer_init(&p->recognizer, recognizer) != 0) {
    status = recognizer == NULL ? 0 : -1;
    kws_recognizer_init(&p->recognizer, &p->config.recognizer);
  }
  return status;
}

int kws_pipeline_feed(kws_pipeline *p, const int16_t *samples, size_t n, size_t *consumed) {
  const uint32_t t0 = now_us(p);
  const int ready = kws_feature_provider_feed(&p->features, samples, n, consumed);
  p->stats.feature_us += now_us(p) - t0;
  p->stats.frames += (uint32_t)ready;
  return ready;
}

uint32_t kws_pipeline_frames(const kws_pipeline *p) { return p->features.frames; }

const int8_t *kws_pipeline_last_frame(const kws_pipeline *p) {
  return kws_feature_provider_last_frame(&p->features);
}

uint32_t kws_pipeline_time_ms(const kws_pipeline *p) {
  return kws_feature_provider_time_ms(&p->features);
}

int kws_pipeline_infer(kws_pipeline *p, kws_pipeline_result *result) {
  int8_t *input = p->config.model_input ? p->config.model_input : p->own_input;
  const uint8_t n = p->config.num_labels;
  memset(result, 0, sizeof(*result));
  result->frame = p->features.frames;
  result->time_ms = kws_feature_provider_time_ms(&p->features);
  result->raw = p->raw;
  result->scores = p->scores;

  kws_feature_provider_window(&p->features, input, p->lut_identity ? NULL : p->lut);
  const uint32_t t0 = now_us(p);
  const int status = p->config.invoke(p->config.ctx, input, p->raw);
  result->invoke_us = now_us(p) - t0;
  p->stats.inferences += 1;
  p->stats.inference_us += result->invoke_us;
  if (result->invoke_us > p->stats.inference_us_max) p->stats.inference_us_max = result->invoke_us;
  if (status != 0) {
    p->stats.model_errors += 1;
    memset(p->raw, 0, sizeof(p->raw));
    return -1;
  }
  for (uint8_t i = 0; i < n; ++i) {
    p->scores[i] =
        kws_recognizer_score(p->raw[i], p->config.output_zero_point, p->score_multiplier);
  }
  return kws_recognizer_process(&p->recognizer, p->scores, result->time_ms, &result->recognition);
}
