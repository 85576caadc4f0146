/* kws_feature_provider: see kws_feature_provider.h. */
#include "kws_feature_provider.h"

#include <string.h>

void kws_feature_provider_reset(kws_feature_provider *fp) {
  kws_frontend_init(&fp->frontend);
  memset(fp->window, -128, sizeof(fp->window));
  memset(fp->last_raw, 0, sizeof(fp->last_raw));
  fp->next_slot = 0;
  fp->frames = 0;
  fp->samples = 0;
}

int kws_feature_provider_feed(kws_feature_provider *fp, const int16_t *samples, size_t n,
                              size_t *consumed) {
  size_t used = 0;
  const int ready = kws_frontend_process(&fp->frontend, samples, n, &used, fp->last_raw);
  fp->samples += used;
  *consumed = used;
  if (!ready) return 0;
  kws_frontend_to_int8(fp->last_raw, fp->window[fp->next_slot]);
  fp->next_slot = (fp->next_slot + 1) % KWS_FP_WINDOW_FRAMES;
  fp->frames += 1;
  return 1;
}

const int8_t *kws_feature_provider_last_frame(const kws_feature_provider *fp) {
  const uint32_t last = (fp->next_slot + KWS_FP_WINDOW_FRAMES - 1) % KWS_FP_WINDOW_FRAMES;
  return fp->window[last];
}

uint32_t kws_feature_provider_time_ms(const kws_feature_provider *fp) {
  return (uint32_t)(fp->samples * 1000u / KWS_FRONTEND_SAMPLE_RATE);
}

void kws_feature_provider_window(const kws_feature_provider *fp, int8_t *out, const int8_t *lut) {
  for (uint32_t f = 0; f < KWS_FP_WINDOW_FRAMES; ++f) {
    const int8_t *src = fp->window[(fp->next_slot + f) % KWS_FP_WINDOW_FRAMES];
    int8_t *dst = out + f * KWS_FP_CHANNELS;
    if (lut == NULL) {
      memcpy(dst, src, KWS_FP_CHANNELS);
    } else {
      for (uint32_t c = 0; c < KWS_FP_CHANNELS; ++c) dst[c] = lut[src[c] + 128];
    }
  }
}

int kws_feature_requant_lut(float scale, int32_t zero_point, int8_t lut[256]) {
  int identity = 1;
  for (int v = -128; v <= 127; ++v) {
    int64_t q = zero_point;
    if (scale > 0.0f) {
      const float x = (float)v / scale;
      /* round half away from zero, without libm; far outside int8 anyway beyond +-1000 */
      const float r = x >= 0.0f ? x + 0.5f : x - 0.5f;
      q += r > 1000.0f ? 1000 : r < -1000.0f ? -1000 : (int32_t)r;
    }
    if (q < -128) q = -128;
    if (q > 127) q = 127;
    lut[v + 128] = (int8_t)q;
    if (q != v) identity = 0;
  }
  return identity;
}
