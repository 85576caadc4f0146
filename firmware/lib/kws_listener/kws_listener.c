/* kws_listener: see kws_listener.h. */
#include "kws_listener.h"

#include <string.h>

static void start_period(kws_listener *l) {
  memset(&l->period, 0, sizeof(l->period));
  l->base_overruns = kws_audio_ring_overruns(l->config.ring);
  l->base_dropped = kws_audio_ring_dropped(l->config.ring);
}

static void mic_reset(kws_mic_check *m) {
  m->min = INT16_MAX;
  m->max = INT16_MIN;
  m->count = 0;
  m->full_scale = 0;
}

int kws_listener_init(kws_listener *l, const kws_listener_config *config) {
  if (config == NULL || config->pipeline == NULL || config->ring == NULL ||
      config->inference_period_ms == 0 ||
      config->inference_period_ms % KWS_FRONTEND_STRIDE_MS != 0) {
    return -1;
  }
  memset(l, 0, sizeof(*l));
  l->config = *config;
  l->infer_every = config->inference_period_ms / KWS_FRONTEND_STRIDE_MS;
  l->mic_status = KWS_MIC_UNKNOWN;
  kws_listener_restart(l);
  return 0;
}

void kws_listener_restart(kws_listener *l) {
  kws_audio_ring_discard(l->config.ring);
  kws_pipeline_reset(l->config.pipeline, NULL);
  l->chunk_len = 0;
  l->chunk_pos = 0;
  mic_reset(&l->mic);
  start_period(l);
}

static kws_mic_status mic_verdict(const kws_mic_check *m) {
  if (m->min == m->max) return m->min == 0 ? KWS_MIC_SILENT : KWS_MIC_STUCK;
  if ((int32_t)m->max - (int32_t)m->min <= 1) return KWS_MIC_FLOATING;
  if (m->full_scale * 2u > m->count) return KWS_MIC_FULL_SCALE;
  return KWS_MIC_OK;
}

/* level peak and the microphone check over samples just read */
static void observe(kws_listener *l, const int16_t *s, size_t n) {
  kws_mic_check *m = &l->mic;
  for (size_t i = 0; i < n; ++i) {
    const int32_t v = s[i];
    const int32_t a = v < 0 ? -v : v;
    if (a > l->period.level_peak) l->period.level_peak = a;
    if (s[i] < m->min) m->min = s[i];
    if (s[i] > m->max) m->max = s[i];
    m->full_scale += a >= 32767;
    if (++m->count == KWS_LISTENER_MIC_CHECK_SAMPLES) {
      l->mic_status = mic_verdict(m);
      mic_reset(m);
    }
  }
  l->period.samples += (uint32_t)n;
}

int kws_listener_step(kws_listener *l, kws_pipeline_result *result) {
  kws_pipeline *p = l->config.pipeline;
  for (;;) {
    if (l->chunk_pos == l->chunk_len) {
      l->chunk_len = kws_audio_ring_read(l->config.ring, l->chunk, KWS_FRONTEND_STRIDE_SAMPLES);
      l->chunk_pos = 0;
      if (l->chunk_len == 0) return 0;
      observe(l, l->chunk, l->chunk_len);
    }
    size_t used = 0;
    const uint32_t feature_us = p->stats.feature_us;
    const int ready =
        kws_pipeline_feed(p, l->chunk + l->chunk_pos, l->chunk_len - l->chunk_pos, &used);
    l->chunk_pos += used;
    l->period.feature_us += p->stats.feature_us - feature_us;
    if (!ready) continue;
    l->period.frames += 1;
    if (kws_pipeline_frames(p) % l->infer_every != 0) continue;
    const int status = kws_pipeline_infer(p, result);
    l->period.inferences += 1;
    l->period.inference_us += result->invoke_us;
    if (result->invoke_us > l->period.inference_us_max)
      l->period.inference_us_max = result->invoke_us;
    if (status < 0) {
      l->period.model_errors += 1;
      return -1;
    }
    return 1;
  }
}

void kws_listener_take_stats(kws_listener *l, kws_listener_stats *out) {
  *out = l->period;
  out->overruns = kws_audio_ring_overruns(l->config.ring) - l->base_overruns;
  out->dropped_samples = kws_audio_ring_dropped(l->config.ring) - l->base_dropped;
  start_period(l);
}

kws_mic_status kws_listener_mic_status(const kws_listener *l) { return l->mic_status; }

const char *kws_mic_status_name(kws_mic_status status) {
  switch (status) {
    case KWS_MIC_OK:
      return "ok";
    case KWS_MIC_SILENT:
      return "silent";
    case KWS_MIC_STUCK:
      return "stuck";
    case KWS_MIC_FLOATING:
      return "floating";
    case KWS_MIC_FULL_SCALE:
      return "full_scale";
    default:
      return "unknown";
  }
}
