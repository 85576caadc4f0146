/* Host unit tests of the firmware's portable C: recognizer, protocol, audio ring, feature
 * provider, pipeline and session. Built with -Wall -Wextra -Werror (and again under
 * AddressSanitizer/UBSan) by tests/firmware/test_firmware_host.py. */
#include <stdlib.h>
#include <string.h>

#include "fw_test.h"
#include "kws_audio_ring.h"
#include "kws_feature_provider.h"
#include "kws_frontend.h"
#include "kws_listener.h"
#include "kws_pipeline.h"
#include "kws_protocol.h"
#include "kws_recognizer.h"
#include "kws_session.h"

/* ---------------------------------------------------------------------------------------- */
static kws_recognizer rec;

static kws_recognizer_config rec_config(uint32_t window_ms, uint32_t suppression_ms,
                                        uint8_t threshold, uint32_t coverage_ms, uint8_t labels,
                                        uint32_t ignore) {
  kws_recognizer_config c;
  memset(&c, 0, sizeof(c));
  c.average_window_ms = window_ms;
  c.suppression_ms = suppression_ms;
  kws_recognizer_set_threshold(&c, threshold);
  c.minimum_coverage_ms = coverage_ms;
  c.num_labels = labels;
  c.ignore_mask = ignore;
  return c;
}

static int feed_rec(uint8_t a, uint8_t b, uint8_t c, uint32_t t, kws_recognition *out) {
  const uint8_t s[3] = {a, b, c};
  return kws_recognizer_process(&rec, s, t, out);
}

static void test_recognizer(void) {
  kws_recognizer_config c = rec_config(1000, 1500, 200, 200, 3, 0x1);
  kws_recognition r;

  kws_recognizer_config bad = c;
  bad.num_labels = 0;
  CHECK_EQ(kws_recognizer_init(&rec, &bad), -1);
  bad.num_labels = KWS_RECOGNIZER_MAX_LABELS + 1;
  CHECK_EQ(kws_recognizer_init(&rec, &bad), -1);
  bad = c;
  bad.average_window_ms = 0;
  CHECK_EQ(kws_recognizer_init(&rec, &bad), -1);
  bad = c;
  bad.minimum_coverage_ms = 1000; /* coverage must be < window */
  CHECK_EQ(kws_recognizer_init(&rec, &bad), -1);
  bad = c;
  bad.average_window_ms = KWS_RECOGNIZER_MAX_WINDOW_MS + 1;
  bad.minimum_coverage_ms = 0;
  CHECK_EQ(kws_recognizer_init(&rec, &bad), -1);
  bad.average_window_ms = KWS_RECOGNIZER_MAX_WINDOW_MS;
  CHECK_EQ(kws_recognizer_init(&rec, &bad), 0);
  CHECK_EQ(kws_recognizer_init(&rec, &c), 0);

  /* minimum coverage (200 ms of results), then a detection, then suppression */
  CHECK_EQ(feed_rec(0, 255, 0, 0, &r), 0);
  CHECK_EQ(r.label, 1);
  CHECK_EQ(r.score, 255);
  CHECK_EQ(r.count, 1);
  CHECK_EQ(feed_rec(0, 255, 0, 100, &r), 0);
  CHECK_EQ(feed_rec(0, 255, 0, 200, &r), 1);
  CHECK_EQ(r.detected, 1);
  CHECK_EQ(r.count, 3);
  CHECK_EQ(r.time_ms, 200);
  CHECK_EQ(feed_rec(0, 255, 0, 300, &r), 0); /* suppressed */
  CHECK_EQ(r.label, 1);
  /* the old results leave the window: 1700 - 300 >= 1000 */
  CHECK_EQ(feed_rec(0, 255, 0, 1700, &r), 0);
  CHECK_EQ(r.count, 1);
  CHECK_EQ(feed_rec(0, 255, 0, 1800, &r), 0);
  CHECK_EQ(feed_rec(0, 255, 0, 1900, &r), 1); /* 1900 - 200 >= 1500 */

  /* average with rounding; threshold is inclusive; exactly window_ms old is out */
  c.minimum_coverage_ms = 2;
  CHECK_EQ(kws_recognizer_init(&rec, &c), 0);
  feed_rec(0, 0, 200, 0, &r);
  CHECK_EQ(feed_rec(0, 0, 255, 1, &r), 0); /* 1 ms of coverage < 2 */
  CHECK_EQ(r.coverage_ms, 1);
  kws_recognizer_reset(&rec);
  feed_rec(0, 0, 200, 0, &r);
  CHECK_EQ(feed_rec(0, 0, 190, 10, &r), 0); /* 195 */
  CHECK_EQ(feed_rec(0, 0, 211, 20, &r), 1);
  CHECK_EQ(r.label, 2);
  CHECK_EQ(r.score, 200); /* (601 + 1) / 3 */
  kws_recognizer_reset(&rec);
  feed_rec(0, 0, 255, 0, &r);
  feed_rec(0, 0, 255, 500, &r);
  feed_rec(0, 0, 255, 999, &r);
  CHECK_EQ(r.count, 3);
  CHECK_EQ(feed_rec(0, 0, 255, 1000, &r), 0); /* suppressed, but the window moved */
  CHECK_EQ(r.count, 3);                       /* t=0 dropped (1000 - 0 >= 1000) */
  kws_recognizer_reset(&rec);
  feed_rec(0, 0, 198, 0, &r);
  feed_rec(0, 0, 199, 1, &r);
  CHECK_EQ(feed_rec(0, 0, 199, 2, &r), 0); /* (596 + 1) / 3 = 199 < 200 */
  CHECK_EQ(r.score, 199);

  /* an ignored label on top never triggers; ties go to the lower index */
  kws_recognizer_reset(&rec);
  for (uint32_t t = 0; t < 5; ++t) CHECK_EQ(feed_rec(255, 0, 0, t, &r), 0);
  CHECK_EQ(r.label, 0);
  kws_recognizer_reset(&rec);
  for (uint32_t t = 0; t < 3; ++t) feed_rec(0, 220, 220, t, &r);
  CHECK_EQ(r.label, 1);
  CHECK_EQ(r.detected, 1);

  /* per-label thresholds: label 1 needs 250, label 2 only 100 */
  c.thresholds[1] = 250;
  c.thresholds[2] = 100;
  CHECK_EQ(kws_recognizer_init(&rec, &c), 0);
  for (uint32_t t = 0; t < 3; ++t) CHECK_EQ(feed_rec(0, 240, 0, t, &r), 0);
  CHECK_EQ(r.label, 1);
  CHECK_EQ(r.score, 240);
  kws_recognizer_reset(&rec);
  feed_rec(0, 0, 100, 0, &r);
  feed_rec(0, 0, 100, 1, &r);
  CHECK_EQ(feed_rec(0, 0, 100, 2, &r), 1);
  CHECK_EQ(r.label, 2);
  kws_recognizer_set_threshold(&c, 200);

  /* the same audio at 2, 5, 10 and 20 inferences per second. A word from the stream's start:
   * detected once the results span 200 ms (not after a number of results); a word from 1000 ms
   * on: detected when ~80% of the 1 s window is the word, 1500..1750 ms at every rate */
  static const uint32_t periods[] = {500, 200, 100, 50};
  c = rec_config(1000, 1500, 200, 200, 3, 0x1);
  for (int i = 0; i < 4; ++i) {
    const uint32_t P = periods[i];
    uint32_t first = 0, later = 0;
    CHECK_EQ(kws_recognizer_init(&rec, &c), 0);
    for (uint32_t t = P; t <= 2000 && first == 0; t += P) {
      if (feed_rec(0, 255, 0, t, &r)) first = t;
    }
    CHECK_EQ(first, P + (200 + P - 1) / P * P);
    CHECK_EQ(kws_recognizer_init(&rec, &c), 0);
    for (uint32_t t = P; t <= 3000; t += P) {
      const uint8_t word = t >= 1000 && t < 2500 ? 255 : 0;
      if (feed_rec((uint8_t)(255 - word), word, 0, t, &r) && later == 0) later = t;
    }
    CHECK(later >= 1500 && later <= 1750);
  }
  /* the history holds 20 results per second over the longest window */
  c = rec_config(KWS_RECOGNIZER_MAX_WINDOW_MS, 1500, 200, 200, 3, 0x1);
  CHECK_EQ(kws_recognizer_init(&rec, &c), 0);
  for (uint32_t t = 0; t <= 10000; t += KWS_RECOGNIZER_MIN_PERIOD_MS) feed_rec(0, 0, 0, t, &r);
  CHECK_EQ(r.count, KWS_RECOGNIZER_MAX_WINDOW_MS / KWS_RECOGNIZER_MIN_PERIOD_MS);
  CHECK_EQ(r.coverage_ms, KWS_RECOGNIZER_MAX_WINDOW_MS - KWS_RECOGNIZER_MIN_PERIOD_MS);
  c = rec_config(1000, 1500, 200, 2, 3, 0x1);
  CHECK_EQ(kws_recognizer_init(&rec, &c), 0);

  /* history cap and time going backwards */
  kws_recognizer_reset(&rec);
  for (uint32_t t = 0; t < 70; ++t) feed_rec(0, 0, 0, t, &r);
  CHECK_EQ(r.count, KWS_RECOGNIZER_MAX_HISTORY);
  feed_rec(0, 0, 0, 5, &r);
  CHECK_EQ(r.count, 1);

  /* scores from int8 outputs */
  const int32_t m = kws_recognizer_score_multiplier(1.0f / 256.0f);
  CHECK_EQ(m, 65280);
  CHECK_EQ(kws_recognizer_score(127, -128, m), 254);
  CHECK_EQ(kws_recognizer_score(-128, -128, m), 0);
  CHECK_EQ(kws_recognizer_score(0, -128, m), 128);
  const int32_t one = kws_recognizer_score_multiplier(1.0f);
  CHECK_EQ(one, 255 * 65536);
  CHECK_EQ(kws_recognizer_score(1, 0, one), 255);
  CHECK_EQ(kws_recognizer_score(2, 0, one), 255);
  CHECK_EQ(kws_recognizer_score(-1, 0, one), 0);
  CHECK_EQ(kws_recognizer_score_multiplier(0.0f), 0);
  CHECK_EQ(kws_recognizer_score_multiplier(-1.0f), 0);
  CHECK_EQ(kws_recognizer_score_multiplier(1e9f), INT32_MAX);

  const char *names[4] = {"_silence_", "_unknown_", "yes", "no"};
  CHECK_EQ(kws_recognizer_ignore_mask(names, 4), 0x3);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
  uint8_t type, seq;
  uint16_t length;
  uint8_t payload[KWS_PROTO_MAX_PAYLOAD];
} frame_copy;

#define MAX_FRAMES 512
static frame_copy got[MAX_FRAMES];
static int n_got;

static void keep(const kws_proto_frame *f) {
  if (n_got >= MAX_FRAMES) return;
  got[n_got].type = f->type;
  got[n_got].seq = f->seq;
  got[n_got].length = f->length;
  memcpy(got[n_got].payload, f->payload, f->length);
  ++n_got;
}

static void feed_all(kws_proto_parser *p, const uint8_t *data, size_t n, size_t chunk) {
  while (n > 0) {
    size_t k = n < chunk ? n : chunk;
    const uint8_t *d = data;
    size_t left = k;
    do {
      size_t used = 0;
      kws_proto_frame f;
      if (kws_proto_parser_feed(p, d, left, &used, &f)) keep(&f);
      d += used;
      left -= used;
    } while (left > 0);
    data += k;
    n -= k;
  }
  kws_proto_frame f;
  size_t used;
  while (kws_proto_parser_feed(p, NULL, 0, &used, &f)) keep(&f);
}

static void flush_all(kws_proto_parser *p) {
  kws_proto_frame f;
  while (kws_proto_parser_flush(p, &f)) keep(&f);
}

static size_t make(uint8_t type, uint8_t seq, size_t len, uint8_t fill, uint8_t *out) {
  uint8_t payload[KWS_PROTO_MAX_PAYLOAD + 1];
  for (size_t i = 0; i < len && i < sizeof(payload); ++i) payload[i] = (uint8_t)(fill + i);
  return kws_proto_encode(type, seq, payload, len, out, KWS_PROTO_MAX_FRAME);
}

static void test_protocol(void) {
  static kws_proto_parser p;
  static uint8_t stream[8 * KWS_PROTO_MAX_FRAME];
  uint8_t frame[KWS_PROTO_MAX_FRAME];

  CHECK_EQ(kws_proto_crc16(0xFFFF, (const uint8_t *)"123456789", 9), 0x29B1);
  CHECK_EQ(make(1, 0, KWS_PROTO_MAX_PAYLOAD + 1, 0, frame), 0);
  CHECK_EQ(kws_proto_encode(1, 0, NULL, 0, frame, 7), 0); /* does not fit */
  CHECK_EQ(make(1, 0, 0, 0, frame), 8);

  /* round trips at the size limits, whole and byte by byte */
  const size_t sizes[3] = {0, 1, KWS_PROTO_MAX_PAYLOAD};
  for (int i = 0; i < 3; ++i) {
    for (size_t chunk = 1; chunk <= KWS_PROTO_MAX_FRAME; chunk += KWS_PROTO_MAX_FRAME - 1) {
      kws_proto_parser_init(&p);
      n_got = 0;
      const size_t n = make(0x03, (uint8_t)i, sizes[i], 7, frame);
      feed_all(&p, frame, n, chunk);
      CHECK_EQ(n_got, 1);
      CHECK_EQ(got[0].type, 0x03);
      CHECK_EQ(got[0].seq, i);
      CHECK_EQ(got[0].length, sizes[i]);
      CHECK(sizes[i] == 0 || (got[0].payload[0] == 7 &&
                              got[0].payload[sizes[i] - 1] == (uint8_t)(7 + sizes[i] - 1)));
      CHECK_EQ(kws_proto_parser_partial(&p), 0);
    }
  }

  /* text before a frame is skipped and counted; sync bytes inside a payload are harmless */
  kws_proto_parser_init(&p);
  n_got = 0;
  size_t n = 0;
  memcpy(stream, "STATS x\r\n", 9);
  n = 9;
  uint8_t syncy[6] = {0xA5, 0x5A, 0xA5, 0x5A, 0xFF, 0xFF};
  n += kws_proto_encode(0x83, 1, syncy, 6, stream + n, KWS_PROTO_MAX_FRAME);
  n += make(0x84, 2, 3, 0, stream + n);
  feed_all(&p, stream, n, 64);
  CHECK_EQ(n_got, 2);
  CHECK_EQ(got[0].seq, 1);
  CHECK_EQ(memcmp(got[0].payload, syncy, 6), 0);
  CHECK_EQ(got[1].seq, 2);
  CHECK_EQ(p.stats.garbage_bytes, 9);
  CHECK_EQ(p.stats.frames, 2);

  /* a truncated frame swallows what follows; its CRC fails and the rescan finds the rest */
  kws_proto_parser_init(&p);
  n_got = 0;
  n = make(0x03, 10, 100, 0, stream);
  n = 10; /* keep only 10 of its 108 bytes */
  n += make(0x03, 11, 5, 1, stream + n);
  n += make(0x03, 12, 200, 2, stream + n);
  feed_all(&p, stream, n, 1000);
  CHECK_EQ(n_got, 2);
  CHECK_EQ(got[0].seq, 11);
  CHECK_EQ(got[1].seq, 12);
  CHECK_EQ(got[1].length, 200);
  CHECK_EQ(p.stats.crc_errors, 1);

  /* ... and when nothing follows, the idle flush gives up on it */
  kws_proto_parser_init(&p);
  n_got = 0;
  make(0x03, 20, 100, 0, stream);
  n = 10;
  n += make(0x03, 21, 5, 1, stream + n);
  feed_all(&p, stream, n, 3);
  CHECK_EQ(n_got, 0);
  CHECK_EQ(kws_proto_parser_partial(&p), 1);
  flush_all(&p);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].seq, 21);
  CHECK_EQ(p.stats.flushes, 1);
  CHECK_EQ(kws_proto_parser_partial(&p), 0);
  kws_proto_frame f;
  CHECK_EQ(kws_proto_parser_flush(&p, &f), 0);

  /* a huge length is rejected at once, without waiting for 64 KB */
  kws_proto_parser_init(&p);
  n_got = 0;
  const uint8_t huge[6] = {0xA5, 0x5A, 0x03, 0x00, 0xFF, 0xFF};
  memcpy(stream, huge, 6);
  n = 6 + make(0x02, 30, 0, 0, stream + 6);
  feed_all(&p, stream, n, 1);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].seq, 30);
  CHECK_EQ(p.stats.length_errors, 1);
  const uint8_t just_over[6] = {0xA5, 0x5A, 0x03, 0x00, 0x01, 0x04}; /* 1025 */
  memcpy(stream, just_over, 6);
  n = 6 + make(0x02, 31, 0, 0, stream + 6);
  feed_all(&p, stream, n, 1);
  CHECK_EQ(n_got, 2);
  CHECK_EQ(p.stats.length_errors, 2);

  /* a corrupted payload byte: that frame is dropped, the next one survives */
  kws_proto_parser_init(&p);
  n_got = 0;
  n = make(0x03, 40, 50, 0, stream);
  stream[20] ^= 0x10;
  n += make(0x03, 41, 50, 0, stream + n);
  feed_all(&p, stream, n, 17);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].seq, 41);
  CHECK_EQ(p.stats.crc_errors, 1);

  /* several frames in one call come out one per call */
  kws_proto_parser_init(&p);
  n_got = 0;
  n = 0;
  for (int i = 0; i < 5; ++i) n += make(0x01, (uint8_t)(50 + i), (size_t)i * 3, 0, stream + n);
  feed_all(&p, stream, n, n);
  CHECK_EQ(n_got, 5);
  CHECK_EQ(got[4].seq, 54);

  /* little-endian helpers */
  uint8_t le[4];
  kws_proto_put_u32(le, 0x12345678u);
  CHECK_EQ(le[0], 0x78);
  CHECK_EQ(le[3], 0x12);
  CHECK_EQ(kws_proto_get_u32(le), 0x12345678u);
  kws_proto_put_u16(le, 0xBEEF);
  CHECK_EQ(kws_proto_get_u16(le), 0xBEEF);
}

/* ---------------------------------------------------------------------------------------- */
static void test_audio_ring(void) {
  kws_audio_ring r;
  int16_t storage[8];
  CHECK_EQ(kws_audio_ring_init(&r, storage, 6), -1);
  CHECK_EQ(kws_audio_ring_init(&r, storage, 8), 0);
  int16_t in[10], out[10];
  for (int i = 0; i < 10; ++i) in[i] = (int16_t)(i + 1);
  CHECK_EQ(kws_audio_ring_write(&r, in, 5), 5);
  CHECK_EQ(kws_audio_ring_write(&r, in + 5, 5), 3); /* 2 dropped */
  CHECK_EQ(kws_audio_ring_overruns(&r), 1);
  CHECK_EQ(kws_audio_ring_dropped(&r), 2);
  CHECK_EQ(kws_audio_ring_available(&r), 8);
  CHECK_EQ(kws_audio_ring_read(&r, out, 3), 3);
  CHECK_EQ(out[0], 1);
  CHECK_EQ(out[2], 3);
  CHECK_EQ(kws_audio_ring_write(&r, in, 3), 3); /* wraps */
  CHECK_EQ(kws_audio_ring_read(&r, out, 10), 8);
  CHECK_EQ(out[0], 4);
  CHECK_EQ(out[4], 8);
  CHECK_EQ(out[5], 1);
  CHECK_EQ(out[7], 3);
  CHECK_EQ(kws_audio_ring_available(&r), 0);
  kws_audio_ring_write(&r, in, 4);
  kws_audio_ring_discard(&r);
  CHECK_EQ(kws_audio_ring_available(&r), 0);
  CHECK_EQ(kws_audio_ring_read(&r, out, 4), 0);
}

/* ---------------------------------------------------------------------------------------- */
#define TEST_SAMPLES 32000
static int16_t audio[TEST_SAMPLES];

static void make_audio(void) {
  /* a chirp-ish tone with noise, loud enough to move the features */
  for (int i = 0; i < TEST_SAMPLES; ++i) {
    const int period = 40 + (i / 800) % 30;
    const int phase = i % period;
    const int tri = phase < period / 2 ? phase * 4 - period : 3 * period - phase * 4;
    audio[i] = (int16_t)(tri * 200 / period * 40 + (int)(fw_rand() % 401) - 200);
  }
}

static void test_feature_provider(void) {
  static kws_feature_provider fp;
  static kws_frontend_state fe;
  static int8_t clip[KWS_FRONTEND_CLIP_FEATURES];
  static int8_t window[KWS_FP_WINDOW_VALUES];
  kws_feature_provider_reset(&fp);
  kws_feature_provider_window(&fp, window, NULL);
  int all_silent = 1;
  for (int i = 0; i < KWS_FP_WINDOW_VALUES; ++i) all_silent &= window[i] == -128;
  CHECK(all_silent);
  CHECK_EQ(kws_feature_provider_last_frame(&fp)[0], -128);

  /* any chunking gives the clip's features; times follow the samples */
  CHECK_EQ(kws_frontend_clip_int8(&fe, audio, 16000, clip, KWS_FRONTEND_CLIP_FRAMES), 49);
  const size_t chunks[4] = {1, 7, 320, 1000};
  for (int c = 0; c < 4; ++c) {
    kws_feature_provider_reset(&fp);
    size_t pos = 0;
    int frames = 0, first_ok = 1;
    while (pos < 16000) {
      size_t left = 16000 - pos < chunks[c] ? 16000 - pos : chunks[c];
      while (left > 0) {
        size_t used = 0;
        if (kws_feature_provider_feed(&fp, audio + pos, left, &used)) {
          ++frames;
          if (frames == 1) first_ok = kws_feature_provider_time_ms(&fp) == 30;
          first_ok &=
              memcmp(kws_feature_provider_last_frame(&fp), clip + (frames - 1) * 40, 40) == 0;
        }
        pos += used;
        left -= used;
      }
    }
    CHECK_EQ(frames, 49);
    CHECK(first_ok);
    CHECK_EQ(kws_feature_provider_time_ms(&fp), 1000);
    kws_feature_provider_window(&fp, window, NULL);
    CHECK_EQ(memcmp(window, clip, sizeof(window)), 0);
  }

  /* past 49 frames the window slides: it holds the stream's last 49 frames */
  static uint16_t raw[100 * 40];
  kws_frontend_init(&fe);
  size_t pos = 0, nraw = 0;
  while (pos < TEST_SAMPLES) {
    size_t used = 0;
    if (kws_frontend_process(&fe, audio + pos, TEST_SAMPLES - pos, &used, raw + nraw * 40)) ++nraw;
    pos += used;
  }
  CHECK_EQ(nraw, 99);
  kws_feature_provider_reset(&fp);
  pos = 0;
  while (pos < TEST_SAMPLES) {
    size_t used = 0;
    kws_feature_provider_feed(&fp, audio + pos, TEST_SAMPLES - pos, &used);
    pos += used;
  }
  CHECK_EQ(fp.frames, 99);
  kws_feature_provider_window(&fp, window, NULL);
  int8_t expect[40];
  kws_frontend_to_int8(raw + 50 * 40, expect);
  CHECK_EQ(memcmp(window, expect, 40), 0);
  kws_frontend_to_int8(raw + 98 * 40, expect);
  CHECK_EQ(memcmp(window + 48 * 40, expect, 40), 0);

  /* requantization tables */
  int8_t lut[256];
  CHECK_EQ(kws_feature_requant_lut(1.0f, 0, lut), 1);
  CHECK_EQ(lut[0], -128);
  CHECK_EQ(lut[255], 127);
  CHECK_EQ(kws_feature_requant_lut(2.0f, 0, lut), 0);
  CHECK_EQ(lut[128 + 3], 2);  /* 1.5 -> 2 */
  CHECK_EQ(lut[128 - 3], -2); /* -1.5 -> -2 */
  CHECK_EQ(lut[128 + 1], 1);  /* 0.5 -> 1 */
  CHECK_EQ(lut[128 - 1], -1);
  CHECK_EQ(kws_feature_requant_lut(0.5f, -10, lut), 0);
  CHECK_EQ(lut[128 + 10], 10);
  CHECK_EQ(lut[128 + 100], 127);
  CHECK_EQ(lut[128 - 100], -128);
  kws_feature_requant_lut(1.0f, 0, lut);
  kws_feature_provider_window(&fp, window, lut);
  kws_frontend_to_int8(raw + 50 * 40, expect);
  CHECK_EQ(memcmp(window, expect, 40), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* a fake model: answers `model_out`, records its calls */
static int8_t model_out[4] = {-128, -128, 127, -128};
static int model_calls = 0, model_fail = 0;
static int8_t model_last_input[KWS_FP_WINDOW_VALUES];

static int fake_model(void *ctx, const int8_t *input, int8_t *output) {
  (void)ctx;
  ++model_calls;
  memcpy(model_last_input, input, sizeof(model_last_input));
  if (model_fail) return -1;
  memcpy(output, model_out, 4);
  return 0;
}

static uint32_t fake_clock = 0;
static uint32_t fake_micros(void *ctx) {
  (void)ctx;
  return fake_clock += 7;
}

/* replies from the session, parsed back */
static kws_proto_parser reply_parser;
static void capture(void *ctx, const uint8_t *data, size_t n) {
  (void)ctx;
  feed_all(&reply_parser, data, n, n);
}

static const char *const labels4[4] = {"_silence_", "_unknown_", "yes", "no"};

static kws_pipeline_config pipeline_config(void) {
  kws_pipeline_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.invoke = fake_model;
  pc.micros = fake_micros;
  pc.num_labels = 4;
  pc.input_scale = 1.0f;
  pc.output_scale = 1.0f / 256.0f;
  pc.output_zero_point = -128;
  pc.recognizer = rec_config(1000, 1500, 200, 280, 4, 0x3);
  return pc;
}

static void request(kws_session *s, uint8_t type, uint8_t seq, const uint8_t *payload, size_t n,
                    uint32_t now) {
  uint8_t frame[KWS_PROTO_MAX_FRAME];
  const size_t len = kws_proto_encode(type, seq, payload, n, frame, sizeof(frame));
  n_got = 0;
  kws_session_receive(s, frame, len, now);
}

static int count_type(uint8_t type) {
  int c = 0;
  for (int i = 0; i < n_got; ++i) c += got[i].type == type;
  return c;
}

static void test_pipeline(void) {
  static kws_pipeline p;
  kws_pipeline_config pc = pipeline_config();
  pc.num_labels = 0;
  CHECK_EQ(kws_pipeline_init(&p, &pc), -1);
  pc = pipeline_config();
  pc.recognizer.num_labels = 3;
  CHECK_EQ(kws_pipeline_init(&p, &pc), -1);
  pc = pipeline_config();
  pc.input_scale = 0.5f; /* requantization: the model sees 2 * feature, clamped */
  CHECK_EQ(kws_pipeline_init(&p, &pc), 0);
  size_t pos = 0;
  while (pos < 16000) {
    size_t used = 0;
    kws_pipeline_feed(&p, audio + pos, 16000 - pos, &used);
    pos += used;
  }
  kws_pipeline_result r;
  model_calls = 0;
  CHECK_EQ(kws_pipeline_infer(&p, &r), 0);
  CHECK_EQ(model_calls, 1);
  CHECK_EQ(r.frame, 49);
  CHECK_EQ(r.time_ms, 1000);
  CHECK_EQ(r.invoke_us, 7);
  CHECK_EQ(r.scores[2], 254);
  CHECK_EQ(r.scores[0], 0);
  CHECK_EQ(r.recognition.label, 2);
  int8_t window[KWS_FP_WINDOW_VALUES];
  kws_feature_provider_window(&p.features, window, NULL);
  int ok = 1;
  for (int i = 0; i < KWS_FP_WINDOW_VALUES; ++i) {
    const int v = 2 * window[i];
    ok &= model_last_input[i] == (v > 127 ? 127 : v < -128 ? -128 : v);
  }
  CHECK(ok);
  CHECK_EQ(p.stats.frames, 49);
  CHECK_EQ(p.stats.inferences, 1);
  model_fail = 1;
  CHECK_EQ(kws_pipeline_infer(&p, &r), -1);
  CHECK_EQ(p.stats.model_errors, 1);
  model_fail = 0;
  /* an invalid recognizer override falls back to the defaults */
  kws_recognizer_config bad = pc.recognizer;
  bad.minimum_coverage_ms = bad.average_window_ms;
  CHECK_EQ(kws_pipeline_reset(&p, &bad), -1);
  CHECK_EQ(p.recognizer.config.minimum_coverage_ms, 280);
  CHECK_EQ(kws_pipeline_frames(&p), 0);
}

static void test_session(void) {
  static kws_pipeline p;
  static kws_session s;
  kws_pipeline_config pc = pipeline_config();
  CHECK_EQ(kws_pipeline_init(&p, &pc), 0);
  kws_session_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.pipeline = &p;
  sc.write = capture;
  sc.info = "board=test\nlabels=_silence_,_unknown_,yes,no\n";
  sc.labels = labels4;
  sc.idle_timeout_ms = 10000;
  kws_session_init(&s, &sc);
  kws_proto_parser_init(&reply_parser);

  /* not in test mode yet */
  request(&s, KWS_MSG_AUDIO, 1, (const uint8_t *)audio, 64, 0);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].type, KWS_MSG_ERROR);
  CHECK_EQ(got[0].seq, 1);
  CHECK_EQ(got[0].payload[0], KWS_MSG_AUDIO);
  CHECK_EQ(got[0].payload[1], KWS_ERR_NOT_IN_TEST_MODE);
  CHECK_EQ(kws_session_active(&s), 0);

  request(&s, KWS_MSG_HELLO, 2, NULL, 0, 10);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].type, KWS_MSG_INFO);
  CHECK_EQ(got[0].length, strlen(sc.info));
  CHECK_EQ(memcmp(got[0].payload, sc.info, strlen(sc.info)), 0);
  CHECK_EQ(kws_session_active(&s), 1);

  /* RESET: features + scores, inference every 7 frames, one threshold per label */
  uint8_t reset[KWS_MSG_RESET_BYTES(4)];
  reset[0] = KWS_RESET_SEND_FEATURES | KWS_RESET_SEND_SCORES;
  kws_proto_put_u16(reset + 1, 7);
  kws_proto_put_u32(reset + 3, 1000);
  kws_proto_put_u32(reset + 7, 1500);
  kws_proto_put_u32(reset + 11, 280);
  reset[15] = 4;
  reset[16] = 10;
  reset[17] = 20;
  reset[18] = 200;
  reset[19] = 40;
  request(&s, KWS_MSG_RESET, 3, reset, sizeof(reset), 20);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].type, KWS_MSG_ACK);
  CHECK_EQ(got[0].payload[0], KWS_MSG_RESET);
  CHECK_EQ(p.recognizer.config.thresholds[1], 20);
  CHECK_EQ(p.recognizer.config.thresholds[3], 40);
  CHECK_EQ(p.recognizer.config.minimum_coverage_ms, 280);

  /* 2 s of audio in 512-sample frames: 99 features, 14 inferences, detections at 430 and
   * 1970 ms (frame k ends at 20k + 10 ms; results at k=7, 14, 21 cover 280 ms at k=21; next
   * allowed >= 1930: k=98) */
  static kws_frontend_state fe;
  static int8_t clip[KWS_FRONTEND_CLIP_FEATURES];
  kws_frontend_clip_int8(&fe, audio, 16000, clip, 49);
  int features = 0, scores = 0, detections = 0, acks = 0, features_ok = 1;
  uint32_t detection_ms[4] = {0, 0, 0, 0};
  uint8_t seq = 10;
  for (size_t pos = 0; pos < TEST_SAMPLES; pos += 512) {
    const size_t len = TEST_SAMPLES - pos < 512 ? TEST_SAMPLES - pos : 512;
    uint8_t payload[1024];
    for (size_t i = 0; i < len; ++i) kws_proto_put_u16(payload + 2 * i, (uint16_t)audio[pos + i]);
    request(&s, KWS_MSG_AUDIO, seq, payload, 2 * len, 30);
    for (int i = 0; i < n_got; ++i) {
      CHECK_EQ(got[i].seq, seq);
      if (got[i].type == KWS_MSG_FEATURES) {
        const uint32_t idx = kws_proto_get_u32(got[i].payload);
        features_ok &= idx == (uint32_t)features;
        features_ok &= kws_proto_get_u32(got[i].payload + 4) == 20 * idx + 30;
        if (idx < 49) features_ok &= memcmp(got[i].payload + 8, clip + idx * 40, 40) == 0;
        ++features;
      } else if (got[i].type == KWS_MSG_SCORES) {
        CHECK_EQ(kws_proto_get_u32(got[i].payload) % 7, 0);
        CHECK_EQ(got[i].payload[12], 4);
        CHECK_EQ((int8_t)got[i].payload[13 + 2], 127);
        CHECK_EQ(got[i].payload[17 + 2], 254);
        ++scores;
      } else if (got[i].type == KWS_MSG_DETECTION) {
        if (detections < 4) detection_ms[detections] = kws_proto_get_u32(got[i].payload);
        CHECK_EQ(got[i].payload[4], 2);
        CHECK_EQ(got[i].payload[5], 254);
        CHECK_EQ(got[i].length, 7 + 3);
        CHECK_EQ(memcmp(got[i].payload + 7, "yes", 3), 0);
        ++detections;
      } else if (got[i].type == KWS_MSG_ACK) {
        CHECK_EQ(i, n_got - 1); /* the ACK comes last */
        ++acks;
      }
    }
    ++seq;
  }
  CHECK_EQ(features, 99);
  CHECK(features_ok);
  CHECK_EQ(scores, 14);
  CHECK_EQ(detections, 2);
  CHECK_EQ(detection_ms[0], 430);
  CHECK_EQ(detection_ms[1], 1970);
  CHECK_EQ(acks, (TEST_SAMPLES + 511) / 512);
  CHECK_EQ(kws_proto_get_u32(got[n_got - 1].payload + 2), TEST_SAMPLES);
  CHECK_EQ(kws_proto_get_u32(got[n_got - 1].payload + 6), 99);

  /* only features: no SCORES, detections still reported */
  reset[0] = KWS_RESET_SEND_FEATURES;
  kws_proto_put_u16(reset + 1, 1);
  request(&s, KWS_MSG_RESET, 4, reset, sizeof(reset), 40);
  CHECK_EQ(got[0].type, KWS_MSG_ACK);
  uint8_t payload[1024];
  for (size_t i = 0; i < 512; ++i) kws_proto_put_u16(payload + 2 * i, (uint16_t)audio[i]);
  request(&s, KWS_MSG_AUDIO, 5, payload, 1024, 50);
  CHECK_EQ(count_type(KWS_MSG_FEATURES), 1);
  CHECK_EQ(count_type(KWS_MSG_SCORES), 0);

  /* one threshold for every label (n = 1) */
  reset[15] = 1;
  reset[16] = 77;
  request(&s, KWS_MSG_RESET, 5, reset, KWS_MSG_RESET_BYTES(1), 45);
  CHECK_EQ(got[0].type, KWS_MSG_ACK);
  CHECK_EQ(p.recognizer.config.thresholds[0], 77);
  CHECK_EQ(p.recognizer.config.thresholds[3], 77);

  /* bad requests */
  request(&s, KWS_MSG_RESET, 6, reset, 5, 60);
  CHECK_EQ(got[0].type, KWS_MSG_ERROR);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_LENGTH);
  reset[15] = 3; /* neither 1 nor the 4 labels */
  request(&s, KWS_MSG_RESET, 6, reset, KWS_MSG_RESET_BYTES(3), 60);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_LENGTH);
  request(&s, KWS_MSG_RESET, 6, reset, KWS_MSG_RESET_FIXED_BYTES, 60);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_LENGTH);
  reset[15] = 4;
  kws_proto_put_u16(reset + 1, 0);
  request(&s, KWS_MSG_RESET, 7, reset, sizeof(reset), 60);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_VALUE);
  kws_proto_put_u16(reset + 1, 1);
  kws_proto_put_u32(reset + 11, 1000); /* coverage = window */
  request(&s, KWS_MSG_RESET, 7, reset, sizeof(reset), 60);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_VALUE);
  kws_proto_put_u32(reset + 11, 0);
  request(&s, KWS_MSG_AUDIO, 8, payload, 3, 60);
  CHECK_EQ(got[0].payload[1], KWS_ERR_BAD_LENGTH);
  request(&s, 0x42, 9, NULL, 0, 60);
  CHECK_EQ(got[0].type, KWS_MSG_ERROR);
  CHECK_EQ(got[0].payload[0], 0x42);
  CHECK_EQ(got[0].payload[1], KWS_ERR_UNKNOWN_TYPE);

  /* a failing model: ERROR per inference, then the ACK */
  request(&s, KWS_MSG_RESET, 10, NULL, 0, 70);
  model_fail = 1;
  request(&s, KWS_MSG_AUDIO, 11, payload, 1024, 70);
  model_fail = 0;
  CHECK_EQ(count_type(KWS_MSG_ERROR), 1);
  CHECK_EQ(got[n_got - 1].type, KWS_MSG_ACK);

  /* STATS text */
  request(&s, KWS_MSG_STATS, 12, NULL, 0, 80);
  CHECK_EQ(got[0].type, KWS_MSG_STATS_REPLY);
  got[0]
      .payload[got[0].length < KWS_PROTO_MAX_PAYLOAD ? got[0].length : KWS_PROTO_MAX_PAYLOAD - 1] =
      0;
  CHECK(strstr((const char *)got[0].payload, "rx_crc_errors=0\n") != NULL);
  CHECK(strstr((const char *)got[0].payload, "model_errors=1\n") != NULL);
  CHECK(strstr((const char *)got[0].payload, "audio_dropped_samples=0\n") != NULL);

  /* a frame split across calls with a pause: the idle flush drops the stale half */
  uint8_t frame[KWS_PROTO_MAX_FRAME];
  const size_t flen = kws_proto_encode(KWS_MSG_STATS, 13, NULL, 0, frame, sizeof(frame));
  n_got = 0;
  kws_session_receive(&s, frame, 4, 100);
  kws_session_poll(&s, 120);
  CHECK_EQ(n_got, 0);
  kws_session_poll(&s, 100 + KWS_PROTO_IDLE_FLUSH_MS);
  kws_session_receive(&s, frame, flen, 200);
  CHECK_EQ(n_got, 1);
  CHECK_EQ(got[0].seq, 13);

  /* BYE, and the idle timeout */
  request(&s, KWS_MSG_BYE, 14, NULL, 0, 300);
  CHECK_EQ(got[0].type, KWS_MSG_ACK);
  CHECK_EQ(kws_session_active(&s), 0);
  request(&s, KWS_MSG_HELLO, 15, NULL, 0, 400);
  CHECK_EQ(kws_session_active(&s), 1);
  kws_session_poll(&s, 400 + 9999);
  CHECK_EQ(kws_session_active(&s), 1);
  kws_session_poll(&s, 400 + 10000);
  CHECK_EQ(kws_session_active(&s), 0);
}

static void test_listener(void) {
  static kws_pipeline p;
  static kws_listener l;
  static int16_t storage[16384];
  static kws_audio_ring ring;
  kws_pipeline_config pc = pipeline_config();
  CHECK_EQ(kws_pipeline_init(&p, &pc), 0);
  CHECK_EQ(kws_audio_ring_init(&ring, storage, 16384), 0);
  kws_listener_config lc = {&p, &ring, 100};
  lc.inference_period_ms = 30; /* not a multiple of the stride */
  CHECK_EQ(kws_listener_init(&l, &lc), -1);
  lc.inference_period_ms = 0;
  CHECK_EQ(kws_listener_init(&l, &lc), -1);
  lc.inference_period_ms = 100;
  lc.ring = NULL;
  CHECK_EQ(kws_listener_init(&l, &lc), -1);
  lc.ring = &ring;
  CHECK_EQ(kws_listener_init(&l, &lc), 0);
  CHECK_EQ(l.infer_every, 5);

  /* 1 s queued at once: every frame is fed, the model runs at frames 5, 10, ... 45 -- one per
   * step, each on the window ending at that frame -- then the ring runs dry */
  CHECK_EQ(kws_audio_ring_write(&ring, audio, 16000), 16000);
  kws_pipeline_result r;
  int steps = 0, at_cadence = 1;
  model_calls = 0;
  while (kws_listener_step(&l, &r) == 1) {
    ++steps;
    at_cadence &= r.frame == (uint32_t)(5 * steps) && r.time_ms == 20u * r.frame + 10u;
  }
  CHECK_EQ(steps, 9);
  CHECK(at_cadence);
  CHECK_EQ(model_calls, 9);
  CHECK_EQ(kws_pipeline_frames(&p), 49);
  CHECK_EQ(kws_audio_ring_available(&ring), 0);
  /* the same windows as the pipeline fed directly (the session's rule, frames % every) */
  static kws_pipeline q;
  CHECK_EQ(kws_pipeline_init(&q, &pc), 0);
  size_t pos = 0;
  while (pos < 16000) {
    size_t used = 0;
    kws_pipeline_feed(&q, audio + pos, 16000 - pos, &used);
    pos += used;
  }
  int8_t a[KWS_FP_WINDOW_VALUES], b[KWS_FP_WINDOW_VALUES];
  kws_feature_provider_window(&p.features, a, NULL);
  kws_feature_provider_window(&q.features, b, NULL);
  CHECK_EQ(memcmp(a, b, sizeof(a)), 0);

  /* per-period statistics: counters, the period's own maximum, dropped samples from the ring */
  kws_listener_stats st;
  kws_listener_take_stats(&l, &st);
  CHECK_EQ(st.frames, 49);
  CHECK_EQ(st.inferences, 9);
  CHECK_EQ(st.inference_us, 9 * 7);
  CHECK_EQ(st.inference_us_max, 7);
  CHECK_EQ(st.samples, 16000);
  CHECK_EQ(st.dropped_samples, 0);
  CHECK(st.level_peak > 0);
  kws_listener_take_stats(&l, &st);
  CHECK_EQ(st.frames, 0);
  CHECK_EQ(st.inference_us_max, 0);
  CHECK_EQ(kws_audio_ring_write(&ring, audio, 16384), 16384);
  CHECK_EQ(kws_audio_ring_write(&ring, audio, 100), 0); /* full: 100 dropped */
  kws_listener_take_stats(&l, &st);
  CHECK_EQ(st.dropped_samples, 100);
  CHECK_EQ(st.overruns, 1);
  model_fail = 1;
  CHECK_EQ(kws_listener_step(&l, &r), -1);
  model_fail = 0;
  kws_listener_take_stats(&l, &st);
  CHECK_EQ(st.model_errors, 1);

  /* restart: the ring is emptied, the pipeline starts a new stream */
  kws_listener_restart(&l);
  CHECK_EQ(kws_audio_ring_available(&ring), 0);
  CHECK_EQ(kws_pipeline_frames(&p), 0);

  /* the microphone check, one second at a time */
  static int16_t block[16000];
  CHECK_EQ(kws_listener_mic_status(&l), KWS_MIC_OK); /* the test audio above */
  struct {
    int16_t a, b;
    kws_mic_status want;
  } cases[] = {{0, 0, KWS_MIC_SILENT},
               {5, 5, KWS_MIC_STUCK},
               {-1, 0, KWS_MIC_FLOATING},
               {32767, -32768, KWS_MIC_FULL_SCALE},
               {-300, 300, KWS_MIC_OK}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); ++c) {
    for (int i = 0; i < 16000; ++i) block[i] = (i % 3) ? cases[c].a : cases[c].b;
    for (int half = 0; half < 2; ++half) {
      kws_audio_ring_write(&ring, block + 8000 * half, 8000);
      while (kws_listener_step(&l, &r) != 0) {}
    }
    CHECK_EQ(kws_listener_mic_status(&l), cases[c].want);
  }
  CHECK(strcmp(kws_mic_status_name(KWS_MIC_SILENT), "silent") == 0);
  CHECK(strcmp(kws_mic_status_name(KWS_MIC_UNKNOWN), "unknown") == 0);
}

int main(void) {
  make_audio();
  test_recognizer();
  test_protocol();
  test_audio_ring();
  test_feature_provider();
  test_pipeline();
  test_session();
  test_listener();
  return fw_report();
}
