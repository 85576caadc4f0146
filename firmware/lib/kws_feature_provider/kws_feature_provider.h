/*
 * kws_feature_provider: a continuous 16 kHz sample stream -> the model's sliding feature window.
 *
 * Samples go through the C front end (firmware/lib/kws_frontend): every 20 ms stride completes
 * one 40-channel frame, mapped to int8 and stored in a ring of the last
 * KWS_FP_WINDOW_FRAMES (49) frames -- one second, the model's input. Before 49 frames
 * exist the older slots hold -128, the value of silence, as when a clip is padded. Any chunking
 * of the input gives the same frames (the front end keeps the partial window).
 *
 * Portable C99, caller-owned state (about 5.5 KB), no allocation.
 */
#ifndef KWS_FEATURE_PROVIDER_H_
#define KWS_FEATURE_PROVIDER_H_

#include <stddef.h>
#include <stdint.h>

#include "kws_frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FP_WINDOW_FRAMES KWS_FRONTEND_CLIP_FRAMES
#define KWS_FP_CHANNELS KWS_FRONTEND_NUM_CHANNELS
#define KWS_FP_WINDOW_VALUES (KWS_FP_WINDOW_FRAMES * KWS_FP_CHANNELS)

typedef struct {
  kws_frontend_state frontend;
  int8_t window[KWS_FP_WINDOW_FRAMES][KWS_FP_CHANNELS]; /* ring of frames */
  uint32_t next_slot;                 /* where the next frame goes = the oldest frame */
  uint32_t frames;                    /* frames completed since reset */
  uint64_t samples;                   /* samples consumed since reset */
  uint16_t last_raw[KWS_FP_CHANNELS]; /* the front end's uint16 output of the last frame */
} kws_feature_provider;

/* Start of a stream: fresh front end, window of silence (-128), counters at zero. */
void kws_feature_provider_reset(kws_feature_provider *fp);

/*
 * Consume samples until a frame completes or input runs out; *consumed gets the number taken.
 * Returns 1 when a frame was added (see _last_frame), 0 otherwise. Call again with the rest.
 */
int kws_feature_provider_feed(kws_feature_provider *fp, const int16_t *samples, size_t n,
                              size_t *consumed);

/* The newest frame (int8, 40 values); the silence frame before the first one. */
const int8_t *kws_feature_provider_last_frame(const kws_feature_provider *fp);

/* Audio time at the end of what was consumed, in ms since reset. */
uint32_t kws_feature_provider_time_ms(const kws_feature_provider *fp);

/*
 * Copy the window, oldest frame first (frame-major, 49 x 40), into out. With lut != NULL each
 * value v is written as lut[v + 128] (requantization to the model's input scale).
 */
void kws_feature_provider_window(const kws_feature_provider *fp, int8_t *out, const int8_t *lut);

/*
 * Requantization table for a model whose float input is the int8 feature value:
 * lut[v + 128] = clamp(round(v / scale) + zero_point, -128, 127). Returns 1 when the table is
 * the identity (scale 1, zero point 0), so callers may skip it.
 */
int kws_feature_requant_lut(float scale, int32_t zero_point, int8_t lut[256]);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FEATURE_PROVIDER_H_ */
