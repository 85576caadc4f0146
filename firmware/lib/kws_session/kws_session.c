/* kws_session: see kws_session.h. */
#include "kws_session.h"

#include <string.h>

static void send(kws_session *s, uint8_t type, uint8_t seq, const uint8_t *payload, size_t n) {
  const size_t len = kws_proto_encode(type, seq, payload, n, s->tx, sizeof(s->tx));
  if (len > 0) s->config.write(s->config.ctx, s->tx, len);
}

static void send_error(kws_session *s, const kws_proto_frame *f, uint8_t code, const char *text) {
  uint8_t *b = s->payload;
  size_t n = 0;
  b[n++] = f->type;
  b[n++] = code;
  while (*text && n < 64) b[n++] = (uint8_t)*text++;
  send(s, KWS_MSG_ERROR, f->seq, b, n);
}

static void send_ack(kws_session *s, const kws_proto_frame *f) {
  uint8_t *b = s->payload;
  b[0] = f->type;
  b[1] = 0;
  kws_proto_put_u32(b + 2, (uint32_t)s->config.pipeline->features.samples);
  kws_proto_put_u32(b + 6, kws_pipeline_frames(s->config.pipeline));
  send(s, KWS_MSG_ACK, f->seq, b, 10);
}

/* "key=value\n" with an unsigned decimal value, bounded by cap. */
static size_t put_kv(uint8_t *b, size_t n, size_t cap, const char *key, uint32_t value) {
  char digits[10];
  size_t d = 0;
  do {
    digits[d++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  const size_t need = strlen(key) + 1 + d + 1;
  if (n + need > cap) return n;
  while (*key) b[n++] = (uint8_t)*key++;
  b[n++] = '=';
  while (d > 0) b[n++] = (uint8_t)digits[--d];
  b[n++] = '\n';
  return n;
}

static void send_stats(kws_session *s, const kws_proto_frame *f) {
  const kws_pipeline_stats *st = &s->config.pipeline->stats;
  const kws_proto_stats *ps = &s->parser.stats;
  uint8_t *b = s->payload;
  const size_t cap = sizeof(s->payload);
  size_t n = 0;
  n = put_kv(b, n, cap, "frames", st->frames);
  n = put_kv(b, n, cap, "inferences", st->inferences);
  n = put_kv(b, n, cap, "feature_us_avg", st->frames ? st->feature_us / st->frames : 0);
  n = put_kv(b, n, cap, "inference_us_avg", st->inferences ? st->inference_us / st->inferences : 0);
  n = put_kv(b, n, cap, "inference_us_max", st->inference_us_max);
  n = put_kv(b, n, cap, "model_errors", st->model_errors);
  n = put_kv(b, n, cap, "audio_overruns",
             s->config.audio ? kws_audio_ring_overruns(s->config.audio) : 0);
  n = put_kv(b, n, cap, "audio_dropped_samples",
             s->config.audio ? kws_audio_ring_dropped(s->config.audio) : 0);
  n = put_kv(b, n, cap, "rx_frames", ps->frames);
  n = put_kv(b, n, cap, "rx_crc_errors", ps->crc_errors);
  n = put_kv(b, n, cap, "rx_length_errors", ps->length_errors);
  n = put_kv(b, n, cap, "rx_garbage_bytes", ps->garbage_bytes);
  n = put_kv(b, n, cap, "rx_flushes", ps->flushes);
  n = put_kv(b, n, cap, "requests", s->frames_handled);
  send(s, KWS_MSG_STATS_REPLY, f->seq, b, n);
}

static void send_features(kws_session *s, uint8_t seq) {
  kws_pipeline *p = s->config.pipeline;
  uint8_t *b = s->payload;
  kws_proto_put_u32(b, kws_pipeline_frames(p) - 1);
  kws_proto_put_u32(b + 4, kws_pipeline_time_ms(p));
  memcpy(b + 8, kws_pipeline_last_frame(p), KWS_FP_CHANNELS);
  send(s, KWS_MSG_FEATURES, seq, b, 8 + KWS_FP_CHANNELS);
}

static void send_scores(kws_session *s, uint8_t seq, const kws_pipeline_result *r) {
  const uint8_t n = s->config.pipeline->config.num_labels;
  uint8_t *b = s->payload;
  kws_proto_put_u32(b, r->frame);
  kws_proto_put_u32(b + 4, r->time_ms);
  kws_proto_put_u32(b + 8, r->invoke_us);
  b[12] = n;
  memcpy(b + 13, r->raw, n);
  memcpy(b + 13 + n, r->scores, n);
  send(s, KWS_MSG_SCORES, seq, b, 13 + 2u * n);
}

static void send_detection(kws_session *s, uint8_t seq, const kws_recognition *rec) {
  uint8_t *b = s->payload;
  size_t n = 0;
  kws_proto_put_u32(b, rec->time_ms);
  b[4] = rec->label;
  b[5] = rec->score;
  b[6] = rec->count;
  n = 7;
  if (s->config.labels != NULL && s->config.labels[rec->label] != NULL) {
    const char *name = s->config.labels[rec->label];
    while (*name && n < 64) b[n++] = (uint8_t)*name++;
  }
  send(s, KWS_MSG_DETECTION, seq, b, n);
}

static void start_stream(kws_session *s) {
  kws_pipeline_reset(s->config.pipeline, NULL);
  s->flags = KWS_RESET_SEND_FEATURES | KWS_RESET_SEND_SCORES;
  s->infer_every = 1;
}

static void handle_reset(kws_session *s, const kws_proto_frame *f) {
  if (f->length == 0) {
    start_stream(s);
    send_ack(s, f);
    return;
  }
  const uint8_t *b = f->payload;
  const uint8_t labels = s->config.pipeline->config.num_labels;
  const uint8_t n = f->length > KWS_MSG_RESET_FIXED_BYTES ? b[15] : 0;
  if (f->length < KWS_MSG_RESET_FIXED_BYTES || f->length != KWS_MSG_RESET_BYTES(n) ||
      (n != 1 && n != labels)) {
    send_error(s, f, KWS_ERR_BAD_LENGTH,
               "RESET payload must be empty or 16 + n bytes, n = 1 or labels");
    return;
  }
  kws_recognizer_config rc = s->config.pipeline->config.recognizer;
  const uint16_t infer_every = kws_proto_get_u16(b + 1);
  rc.average_window_ms = kws_proto_get_u32(b + 3);
  rc.suppression_ms = kws_proto_get_u32(b + 7);
  rc.minimum_coverage_ms = kws_proto_get_u32(b + 11);
  if (n == 1) {
    kws_recognizer_set_threshold(&rc, b[16]);
  } else {
    memcpy(rc.thresholds, b + 16, n);
  }
  if (infer_every == 0 || !kws_recognizer_config_valid(&rc)) {
    send_error(s, f, KWS_ERR_BAD_VALUE,
               "need infer_every >= 1, 0 < window <= 3000, coverage < window");
    return;
  }
  kws_pipeline_reset(s->config.pipeline, &rc);
  s->flags = b[0];
  s->infer_every = infer_every;
  send_ack(s, f);
}

static void handle_audio(kws_session *s, const kws_proto_frame *f) {
  if (f->length % 2 != 0) {
    send_error(s, f, KWS_ERR_BAD_LENGTH, "AUDIO payload must be whole int16 samples");
    return;
  }
  kws_pipeline *p = s->config.pipeline;
  const size_t n = f->length / 2u;
  for (size_t i = 0; i < n; ++i) s->samples[i] = (int16_t)kws_proto_get_u16(f->payload + 2 * i);
  /* f->payload lives in the parser buffer, untouched while we reply (replies use tx/payload) */
  size_t pos = 0;
  while (pos < n) {
    size_t used = 0;
    const int ready = kws_pipeline_feed(p, s->samples + pos, n - pos, &used);
    pos += used;
    if (!ready) continue;
    if (s->flags & KWS_RESET_SEND_FEATURES) send_features(s, f->seq);
    if (kws_pipeline_frames(p) % s->infer_every != 0) continue;
    kws_pipeline_result r;
    const int status = kws_pipeline_infer(p, &r);
    if (status < 0) {
      send_error(s, f, KWS_ERR_MODEL, "model invocation failed");
      continue;
    }
    if (s->flags & KWS_RESET_SEND_SCORES) send_scores(s, f->seq, &r);
    if (status == 1) send_detection(s, f->seq, &r.recognition);
  }
  send_ack(s, f);
}

static void handle(kws_session *s, const kws_proto_frame *f) {
  s->frames_handled += 1;
  switch (f->type) {
    case KWS_MSG_HELLO: {
      s->active = 1;
      start_stream(s);
      memset(&s->config.pipeline->stats, 0, sizeof(s->config.pipeline->stats));
      const char *info = s->config.info ? s->config.info : "";
      size_t n = strlen(info);
      if (n > KWS_PROTO_MAX_PAYLOAD) n = KWS_PROTO_MAX_PAYLOAD;
      send(s, KWS_MSG_INFO, f->seq, (const uint8_t *)info, n);
      return;
    }
    case KWS_MSG_STATS:
      send_stats(s, f);
      return;
    case KWS_MSG_RESET:
    case KWS_MSG_AUDIO:
    case KWS_MSG_BYE:
      break;
    default:
      send_error(s, f, KWS_ERR_UNKNOWN_TYPE, "unknown request type");
      return;
  }
  if (!s->active) {
    send_error(s, f, KWS_ERR_NOT_IN_TEST_MODE, "send HELLO first");
    return;
  }
  if (f->type == KWS_MSG_RESET) {
    handle_reset(s, f);
  } else if (f->type == KWS_MSG_AUDIO) {
    handle_audio(s, f);
  } else {
    s->active = 0;
    start_stream(s);
    send_ack(s, f);
  }
}

void kws_session_init(kws_session *s, const kws_session_config *config) {
  memset(s, 0, sizeof(*s));
  s->config = *config;
  kws_proto_parser_init(&s->parser);
  s->infer_every = 1;
  s->flags = KWS_RESET_SEND_FEATURES | KWS_RESET_SEND_SCORES;
}

void kws_session_receive(kws_session *s, const uint8_t *data, size_t n, uint32_t now_ms) {
  if (n > 0) s->last_rx_ms = now_ms;
  while (n > 0) {
    size_t used = 0;
    kws_proto_frame f;
    const int got = kws_proto_parser_feed(&s->parser, data, n, &used, &f);
    data += used;
    n -= used;
    if (got) handle(s, &f);
  }
  /* frames completed from held bytes need no new input */
  kws_proto_frame f;
  size_t used = 0;
  while (kws_proto_parser_feed(&s->parser, NULL, 0, &used, &f)) handle(s, &f);
}

void kws_session_poll(kws_session *s, uint32_t now_ms) {
  const uint32_t idle = now_ms - s->last_rx_ms;
  if (kws_proto_parser_partial(&s->parser) && idle >= KWS_PROTO_IDLE_FLUSH_MS) {
    kws_proto_frame f;
    while (kws_proto_parser_flush(&s->parser, &f)) handle(s, &f);
  }
  if (s->active && s->config.idle_timeout_ms != 0 && idle >= s->config.idle_timeout_ms) {
    s->active = 0;
    start_stream(s);
  }
}

int kws_session_active(const kws_session *s) { return s->active; }
