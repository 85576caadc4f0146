/* Fuzz-style tests of the serial protocol, built with -fsanitize=address,undefined by
 * tests/firmware/test_firmware_host.py: any out-of-bounds access or undefined behaviour aborts.
 *
 * 1. random bytes in random chunks, with random idle flushes: nothing but counters change;
 * 2. valid frames mixed with garbage, truncated frames, huge lengths and corrupted frames: every
 *    valid frame comes out, in order, intact;
 * 3. the session fed random (valid-CRC) requests of every type and size between garbage: each
 *    request gets exactly one final reply, and the board stays usable.
 * Usage: fuzz_protocol [iterations-scale]. Prints "N passed, M failed". */
#include <stdlib.h>
#include <string.h>

#include "fw_test.h"
#include "kws_pipeline.h"
#include "kws_protocol.h"
#include "kws_session.h"

static int scale = 1;

/* ---- 1 ---- */
static void random_bytes(void) {
  static kws_proto_parser p;
  static uint8_t data[4096];
  kws_proto_parser_init(&p);
  unsigned long delivered = 0;
  int bounded = 1;
  for (int round = 0; round < 600 * scale; ++round) {
    const size_t n = fw_rand() % sizeof(data);
    for (size_t i = 0; i < n; ++i) {
      const unsigned r = fw_rand();
      /* bias towards sync bytes and small lengths so headers actually form */
      data[i] = (uint8_t)(r % 7 == 0   ? 0xA5
                          : r % 7 == 1 ? 0x5A
                          : r % 7 == 2 ? (r >> 8) % 5
                                       : r >> 16);
    }
    size_t pos = 0;
    while (pos < n) {
      size_t used = 0;
      kws_proto_frame f;
      const size_t chunk = 1 + fw_rand() % 700;
      const size_t k = n - pos < chunk ? n - pos : chunk;
      if (kws_proto_parser_feed(&p, data + pos, k, &used, &f)) {
        ++delivered;
        bounded &= f.length <= KWS_PROTO_MAX_PAYLOAD && f.payload >= p.buf &&
                   f.payload + f.length <= p.buf + sizeof(p.buf);
      }
      bounded &= used <= k && p.start <= p.end && p.end <= sizeof(p.buf);
      pos += used;
    }
    if (fw_rand() % 4 == 0) {
      kws_proto_frame f;
      while (kws_proto_parser_flush(&p, &f)) ++delivered;
      bounded &= kws_proto_parser_partial(&p) == 0;
    }
  }
  CHECK(bounded);
  CHECK_EQ(delivered, p.stats.frames);
}

/* ---- 2 ---- */
#define MAX_EXPECTED 4000
typedef struct {
  uint8_t type, seq;
  uint16_t length;
  uint32_t crc; /* of the payload, to compare cheaply */
} frame_id;
static frame_id expected[MAX_EXPECTED], seen[MAX_EXPECTED];
static int n_expected, n_seen;

static size_t random_frame(uint8_t *out, frame_id *id) {
  uint8_t payload[KWS_PROTO_MAX_PAYLOAD];
  const unsigned r = fw_rand();
  const size_t len = r % 8 == 0   ? KWS_PROTO_MAX_PAYLOAD - fw_rand() % 3
                     : r % 3 == 0 ? 0
                                  : fw_rand() % 300;
  for (size_t i = 0; i < len; ++i) payload[i] = (uint8_t)fw_rand();
  id->type = (uint8_t)fw_rand();
  id->seq = (uint8_t)fw_rand();
  id->length = (uint16_t)len;
  id->crc = kws_proto_crc16(0xFFFF, payload, len);
  return kws_proto_encode(id->type, id->seq, payload, len, out, KWS_PROTO_MAX_FRAME);
}

static void note(const kws_proto_frame *f) {
  if (n_seen >= MAX_EXPECTED) return;
  seen[n_seen].type = f->type;
  seen[n_seen].seq = f->seq;
  seen[n_seen].length = f->length;
  seen[n_seen].crc = kws_proto_crc16(0xFFFF, f->payload, f->length);
  ++n_seen;
}

static void mixed_stream(void) {
  static uint8_t stream[3 << 20];
  static kws_proto_parser p;
  size_t n = 0;
  n_expected = n_seen = 0;
  int truncated = 0, huge = 0, corrupted = 0;
  while (n_expected < MAX_EXPECTED && n + 2 * KWS_PROTO_MAX_FRAME + 64 < sizeof(stream)) {
    frame_id id;
    const unsigned kind = fw_rand() % 10;
    if (kind < 5) { /* a valid frame */
      n += random_frame(stream + n, &id);
      expected[n_expected++] = id;
    } else if (kind < 7) { /* garbage without sync bytes */
      const size_t g = fw_rand() % 60;
      for (size_t i = 0; i < g; ++i) {
        uint8_t b = (uint8_t)fw_rand();
        stream[n++] = b == 0xA5 ? 0x00 : b;
      }
    } else if (kind < 8) { /* a truncated frame */
      const size_t len = random_frame(stream + n, &id);
      n += 1 + fw_rand() % (len - 1);
      ++truncated;
    } else if (kind < 9) { /* a header with a huge length */
      stream[n++] = 0xA5;
      stream[n++] = 0x5A;
      stream[n++] = (uint8_t)fw_rand();
      stream[n++] = (uint8_t)fw_rand();
      kws_proto_put_u16(stream + n, (uint16_t)(KWS_PROTO_MAX_PAYLOAD + 1 + fw_rand() % 60000));
      n += 2;
      ++huge;
    } else { /* a frame with one byte changed after the sync pair */
      const size_t len = random_frame(stream + n, &id);
      stream[n + 2 + fw_rand() % (len - 2)] ^= (uint8_t)(1 + fw_rand() % 255);
      n += len;
      ++corrupted;
    }
  }
  kws_proto_parser_init(&p);
  size_t pos = 0;
  while (pos < n) {
    const size_t chunk = 1 + fw_rand() % 2000;
    size_t k = n - pos < chunk ? n - pos : chunk;
    while (k > 0) {
      size_t used = 0;
      kws_proto_frame f;
      if (kws_proto_parser_feed(&p, stream + pos, k, &used, &f)) note(&f);
      pos += used;
      k -= used;
    }
  }
  kws_proto_frame f;
  size_t used;
  while (kws_proto_parser_feed(&p, NULL, 0, &used, &f)) note(&f);
  while (kws_proto_parser_flush(&p, &f)) note(&f);
  CHECK(truncated > 100 && huge > 100 && corrupted > 100);
  CHECK_EQ(n_seen, n_expected);
  int same = n_seen == n_expected;
  for (int i = 0; same && i < n_seen; ++i) {
    same = seen[i].type == expected[i].type && seen[i].seq == expected[i].seq &&
           seen[i].length == expected[i].length && seen[i].crc == expected[i].crc;
    if (!same) printf("first difference at frame %d of %d\n", i, n_expected);
  }
  CHECK(same);
  CHECK_EQ(p.stats.length_errors >= (uint32_t)huge, 1);
}

/* ---- 3 ---- */
static int model(void *ctx, const int8_t *in, int8_t *out) {
  (void)ctx;
  for (int i = 0; i < 4; ++i) out[i] = in[i * 100];
  return 0;
}

static kws_proto_parser replies;
static unsigned long final_replies, other_replies;

static void count_reply(const kws_proto_frame *f) {
  if (f->type == KWS_MSG_INFO || f->type == KWS_MSG_ACK || f->type == KWS_MSG_STATS_REPLY ||
      f->type == KWS_MSG_ERROR) {
    ++final_replies;
  } else {
    ++other_replies;
  }
}

static void capture(void *ctx, const uint8_t *data, size_t n) {
  (void)ctx;
  while (n > 0) {
    size_t used = 0;
    kws_proto_frame f;
    if (kws_proto_parser_feed(&replies, data, n, &used, &f)) count_reply(&f);
    data += used;
    n -= used;
  }
  kws_proto_frame f;
  size_t used;
  while (kws_proto_parser_feed(&replies, NULL, 0, &used, &f)) count_reply(&f);
}

static void session_requests(void) {
  static kws_pipeline pl;
  static kws_session s;
  static const char *const labels[4] = {"_silence_", "_unknown_", "yes", "no"};
  kws_pipeline_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.invoke = model;
  pc.num_labels = 4;
  pc.input_scale = 0.7f;
  pc.output_scale = 1.0f / 256.0f;
  pc.output_zero_point = -128;
  pc.recognizer.average_window_ms = 1000;
  pc.recognizer.suppression_ms = 1500;
  kws_recognizer_set_threshold(&pc.recognizer, 100);
  pc.recognizer.minimum_coverage_ms = 40;
  pc.recognizer.num_labels = 4;
  pc.recognizer.ignore_mask = 0x3;
  CHECK_EQ(kws_pipeline_init(&pl, &pc), 0);
  kws_session_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.pipeline = &pl;
  sc.write = capture;
  sc.info = "board=fuzz\n";
  sc.labels = labels;
  kws_session_init(&s, &sc);
  kws_proto_parser_init(&replies);
  final_replies = other_replies = 0;

  static const uint8_t types[] = {KWS_MSG_HELLO, KWS_MSG_RESET, KWS_MSG_AUDIO, KWS_MSG_AUDIO,
                                  KWS_MSG_AUDIO, KWS_MSG_AUDIO, KWS_MSG_AUDIO, KWS_MSG_AUDIO,
                                  KWS_MSG_STATS, KWS_MSG_HELLO, KWS_MSG_BYE,   0x00,
                                  0x81,          0xFF};
  uint8_t payload[KWS_PROTO_MAX_PAYLOAD], frame[KWS_PROTO_MAX_FRAME], junk[40];
  unsigned long sent = 0;
  uint32_t now = 0;
  for (int i = 0; i < 3000 * scale; ++i) {
    const uint8_t type = fw_rand() % 5 == 0 ? (uint8_t)fw_rand() : types[fw_rand() % sizeof(types)];
    size_t len;
    const unsigned r = fw_rand() % 6;
    const size_t reset_len = KWS_MSG_RESET_BYTES(fw_rand() % 2 ? 4 : 1);
    len = r == 0 ? 0 : r == 1 ? reset_len : r == 2 ? KWS_PROTO_MAX_PAYLOAD : fw_rand() % 700;
    if (type == KWS_MSG_AUDIO && fw_rand() % 4 != 0) len &= ~(size_t)1; /* mostly whole samples */
    for (size_t k = 0; k < len; ++k) payload[k] = (uint8_t)fw_rand();
    if (type == KWS_MSG_RESET && len == reset_len && fw_rand() % 2) {
      kws_proto_put_u16(payload + 1, (uint16_t)(1 + fw_rand() % 60)); /* mostly valid resets */
      kws_proto_put_u32(payload + 3, 1 + fw_rand() % 3000);
      kws_proto_put_u32(payload + 11, fw_rand() % 1000);
      payload[15] = (uint8_t)(reset_len - KWS_MSG_RESET_FIXED_BYTES);
    }
    const size_t flen = kws_proto_encode(type, (uint8_t)i, payload, len, frame, sizeof(frame));
    const size_t jlen = fw_rand() % sizeof(junk);
    for (size_t k = 0; k < jlen; ++k) {
      const uint8_t b = (uint8_t)fw_rand();
      junk[k] = b == 0xA5 ? 0x11 : b;
    }
    now += 1 + fw_rand() % 30;
    kws_session_receive(&s, junk, jlen, now);
    /* deliver in two pieces */
    const size_t cut = fw_rand() % (flen + 1);
    kws_session_receive(&s, frame, cut, now);
    kws_session_receive(&s, frame + cut, flen - cut, now);
    kws_session_poll(&s, now);
    ++sent;
    if (fw_rand() % 50 == 0) { /* the host vanishes mid-frame */
      kws_session_receive(&s, frame, flen / 2, now);
      now += KWS_PROTO_IDLE_FLUSH_MS;
      kws_session_poll(&s, now);
    }
  }
  CHECK_EQ(s.frames_handled, sent);
  CHECK_EQ(final_replies, sent);
  CHECK(other_replies > 0);
  /* still answers normally */
  const size_t flen = kws_proto_encode(KWS_MSG_HELLO, 1, NULL, 0, frame, sizeof(frame));
  const unsigned long before = final_replies;
  kws_session_receive(&s, frame, flen, now + 1);
  CHECK_EQ(final_replies, before + 1);
  CHECK_EQ(kws_session_active(&s), 1);
}

int main(int argc, char **argv) {
  if (argc > 1) scale = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
  random_bytes();
  mixed_stream();
  session_requests();
  return fw_report();
}
