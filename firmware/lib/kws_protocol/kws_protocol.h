/*
 * kws_protocol: the framing of the serial test mode (host <-> board), portable C99.
 *
 * A frame on the wire:
 *
 *   0xA5 0x5A | type (1) | seq (1) | length (2, LE) | payload (length) | crc (2, LE)
 *
 * crc is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out) over type,
 * seq, length and payload. length <= KWS_PROTO_MAX_PAYLOAD. Multi-byte payload fields are
 * little-endian. kwstool/device.py is the host side; the message types and payloads are
 * listed below and in firmware/README.md.
 *
 * The parser is a byte-stream state machine over one fixed buffer (no allocation):
 * - bytes before a sync pair are dropped (counted as garbage);
 * - a length over the maximum rejects the header at once;
 * - a CRC mismatch rejects the candidate;
 * after a rejection it resynchronises by dropping only the first sync byte and rescanning the
 * bytes it already holds, so a frame that followed a damaged or truncated one is still found.
 * A frame cut off for good (nothing more arrives) is abandoned with kws_proto_parser_flush(),
 * which the caller invokes after an idle gap. No input sequence can make it read or write
 * outside its buffer, and every call does bounded work.
 */
#ifndef KWS_PROTOCOL_H_
#define KWS_PROTOCOL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: RESET carries minimum_coverage_ms and per-label thresholds; STATS has audio_dropped_samples */
#define KWS_PROTO_VERSION 2
#define KWS_PROTO_SYNC0 0xA5
#define KWS_PROTO_SYNC1 0x5A
#define KWS_PROTO_HEADER_BYTES 6
#define KWS_PROTO_CRC_BYTES 2
#define KWS_PROTO_MAX_PAYLOAD 1024
#define KWS_PROTO_MAX_FRAME (KWS_PROTO_HEADER_BYTES + KWS_PROTO_MAX_PAYLOAD + KWS_PROTO_CRC_BYTES)
/* Idle gap after which a partial frame is abandoned (caller's clock). */
#define KWS_PROTO_IDLE_FLUSH_MS 50

/* Host -> board requests. Every request is answered; replies set bit 7 of the type. */
enum {
  KWS_MSG_HELLO = 0x01, /* enter test mode; reply INFO (text "key=value" lines) */
  /* new stream: payload empty (defaults) or KWS_MSG_RESET_BYTES(n); reply ACK */
  KWS_MSG_RESET = 0x02,
  /* int16 LE samples, <= KWS_PROTO_MAX_PAYLOAD bytes; FEATURES/SCORES/DETECTION then ACK */
  KWS_MSG_AUDIO = 0x03,
  KWS_MSG_STATS = 0x04, /* reply STATS (text "key=value" lines) */
  KWS_MSG_BYE = 0x05,   /* leave test mode; reply ACK */

  KWS_MSG_INFO = 0x81,
  /* u8 request type, u8 status (0 ok), u32 samples since RESET, u32 frames since RESET */
  KWS_MSG_ACK = 0x82,
  KWS_MSG_FEATURES = 0x83, /* u32 frame index, u32 time_ms, int8[40] */
  /* u32 frame index, u32 time_ms, u32 invoke_us, u8 n, int8[n] raw, u8[n] scores */
  KWS_MSG_SCORES = 0x84,
  KWS_MSG_DETECTION = 0x85, /* u32 time_ms, u8 label, u8 score, u8 count, label name (no NUL) */
  KWS_MSG_STATS_REPLY = 0x86,
  KWS_MSG_ERROR = 0xFF /* u8 request type, u8 code, text */
};

/* RESET payload (all LE): u8 flags, u16 infer_every (frames, >= 1), u32 average_window_ms,
 * u32 suppression_ms, u32 minimum_coverage_ms, u8 n, u8 thresholds[n] -- n = the number of
 * labels (one threshold per label) or 1 (the same threshold for every label). */
#define KWS_MSG_RESET_FIXED_BYTES 16
#define KWS_MSG_RESET_BYTES(n) (KWS_MSG_RESET_FIXED_BYTES + (n))
#define KWS_RESET_SEND_FEATURES 0x01
#define KWS_RESET_SEND_SCORES 0x02

/* ERROR codes */
enum {
  KWS_ERR_UNKNOWN_TYPE = 1,
  KWS_ERR_BAD_LENGTH = 2,
  KWS_ERR_NOT_IN_TEST_MODE = 3,
  KWS_ERR_BAD_VALUE = 4,
  KWS_ERR_MODEL = 5
};

typedef struct {
  uint8_t type;
  uint8_t seq;
  uint16_t length;
  const uint8_t *payload; /* valid until the next call on the parser */
} kws_proto_frame;

typedef struct {
  uint32_t frames;        /* good frames delivered */
  uint32_t crc_errors;    /* candidates with a bad CRC */
  uint32_t length_errors; /* headers with length > KWS_PROTO_MAX_PAYLOAD */
  uint32_t garbage_bytes; /* bytes dropped while looking for a sync pair */
  uint32_t flushes;       /* partial frames abandoned by kws_proto_parser_flush */
} kws_proto_stats;

typedef struct {
  uint8_t buf[KWS_PROTO_MAX_FRAME];
  size_t start; /* held bytes are buf[start .. end) */
  size_t end;
  size_t pending_frame; /* size of the frame delivered last call, dropped on the next */
  kws_proto_stats stats;
} kws_proto_parser;

void kws_proto_parser_init(kws_proto_parser *p);

/*
 * Feed up to n bytes. Stops as soon as a frame is complete: returns 1 and fills *frame, with
 * *consumed the bytes taken from data; call again with the rest. Returns 0 when all n bytes
 * were taken and no frame is complete.
 */
int kws_proto_parser_feed(kws_proto_parser *p, const uint8_t *data, size_t n, size_t *consumed,
                          kws_proto_frame *frame);

/*
 * The stream went idle (no byte for KWS_PROTO_IDLE_FLUSH_MS): abandon the partial frame and
 * rescan the bytes after its first one. Returns 1 with a frame found among the held bytes
 * (call again), 0 once nothing is held any more.
 */
int kws_proto_parser_flush(kws_proto_parser *p, kws_proto_frame *frame);

/* 1 when bytes of an incomplete frame are held. */
int kws_proto_parser_partial(const kws_proto_parser *p);

/* CRC-16/CCITT-FALSE, continuing from crc (start with 0xFFFF). */
uint16_t kws_proto_crc16(uint16_t crc, const uint8_t *data, size_t n);

/*
 * Write a whole frame into out (capacity cap). Returns its size, or 0 when the payload is too
 * long or the frame does not fit.
 */
size_t kws_proto_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t length,
                        uint8_t *out, size_t cap);

/* Little-endian field helpers. */
void kws_proto_put_u16(uint8_t *p, uint16_t v);
void kws_proto_put_u32(uint8_t *p, uint32_t v);
uint16_t kws_proto_get_u16(const uint8_t *p);
uint32_t kws_proto_get_u32(const uint8_t *p);

#ifdef __cplusplus
}
#endif

#endif /* KWS_PROTOCOL_H_ */
