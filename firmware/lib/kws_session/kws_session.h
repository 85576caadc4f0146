/*
 * kws_session: the serial test mode. The host streams 16 kHz 16-bit PCM in framed messages
 * (kws_protocol); the board runs it through its own pipeline (features, model, recognizer) and
 * answers with the features, the scores and the detections it computed.
 *
 * Requests and replies (payload layouts in kws_protocol.h):
 *   HELLO  -> INFO     enter test mode (live listening pauses), pipeline reset to defaults,
 *                      pipeline counters (frames, inferences, microseconds) zeroed
 *   RESET  -> ACK      new stream; optional flags, inference period and recognizer settings
 *                      (window, suppression, minimum coverage, one threshold or one per label)
 *   AUDIO  -> FEATURES per completed frame (if enabled), SCORES per inference (if enabled),
 *             DETECTION per detection, then ACK (samples/frames since RESET)
 *   STATS  -> STATS    counters as "key=value" lines
 *   BYE    -> ACK      back to live listening (also after idle_timeout_ms without a frame)
 * Anything else, or a bad payload, gets ERROR. The host sends one request and waits for its
 * ACK (or reply) before the next, so the board never has to buffer more than one frame.
 *
 * Portable C99, caller-owned state, no allocation, no stdio.
 */
#ifndef KWS_SESSION_H_
#define KWS_SESSION_H_

#include <stddef.h>
#include <stdint.h>

#include "kws_audio_ring.h"
#include "kws_pipeline.h"
#include "kws_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*kws_write_fn)(void *ctx, const uint8_t *data, size_t n);

typedef struct {
  kws_pipeline *pipeline;
  kws_write_fn write; /* sends bytes to the host */
  void *ctx;
  const char *info;            /* INFO reply: "key=value\n" lines describing board and model */
  const char *const *labels;   /* pipeline num_labels names, for DETECTION (may be NULL) */
  const kws_audio_ring *audio; /* live audio ring, for its overrun count in STATS (may be NULL) */
  uint32_t idle_timeout_ms;    /* leave test mode after this long without a frame (0: never) */
} kws_session_config;

typedef struct {
  kws_session_config config;
  kws_proto_parser parser;
  uint8_t tx[KWS_PROTO_MAX_FRAME];
  uint8_t payload[KWS_PROTO_MAX_PAYLOAD];
  int16_t samples[KWS_PROTO_MAX_PAYLOAD / 2];
  uint32_t last_rx_ms;
  uint32_t frames_handled; /* requests answered */
  uint16_t infer_every;    /* inference after every this many frames */
  uint8_t flags;           /* KWS_RESET_SEND_* */
  uint8_t active;          /* in test mode */
} kws_session;

void kws_session_init(kws_session *s, const kws_session_config *config);

/* Bytes received from the host at now_ms; complete requests are answered at once. */
void kws_session_receive(kws_session *s, const uint8_t *data, size_t n, uint32_t now_ms);

/* Call often: abandons a partial frame after an idle gap, ends an idle test mode. */
void kws_session_poll(kws_session *s, uint32_t now_ms);

/* 1 while the host drives the pipeline (the live loop must leave it alone). */
int kws_session_active(const kws_session *s);

#ifdef __cplusplus
}
#endif

#endif /* KWS_SESSION_H_ */
