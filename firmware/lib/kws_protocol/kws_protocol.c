/* kws_protocol: see kws_protocol.h. */
#include "kws_protocol.h"

#include <string.h>

/* CRC-16/CCITT-FALSE, one table entry per byte value (512 bytes of flash). */
static const uint16_t crc_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7, 0x8108, 0x9129, 0xA14A, 0xB16B,
    0xC18C, 0xD1AD, 0xE1CE, 0xF1EF, 0x1231, 0x0210, 0x3273, 0x2252, 0x52B5, 0x4294, 0x72F7, 0x62D6,
    0x9339, 0x8318, 0xB37B, 0xA35A, 0xD3BD, 0xC39C, 0xF3FF, 0xE3DE, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64E6, 0x74C7, 0x44A4, 0x5485, 0xA56A, 0xB54B, 0x8528, 0x9509, 0xE5EE, 0xF5CF, 0xC5AC, 0xD58D,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76D7, 0x66F6, 0x5695, 0x46B4, 0xB75B, 0xA77A, 0x9719, 0x8738,
    0xF7DF, 0xE7FE, 0xD79D, 0xC7BC, 0x48C4, 0x58E5, 0x6886, 0x78A7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xC9CC, 0xD9ED, 0xE98E, 0xF9AF, 0x8948, 0x9969, 0xA90A, 0xB92B, 0x5AF5, 0x4AD4, 0x7AB7, 0x6A96,
    0x1A71, 0x0A50, 0x3A33, 0x2A12, 0xDBFD, 0xCBDC, 0xFBBF, 0xEB9E, 0x9B79, 0x8B58, 0xBB3B, 0xAB1A,
    0x6CA6, 0x7C87, 0x4CE4, 0x5CC5, 0x2C22, 0x3C03, 0x0C60, 0x1C41, 0xEDAE, 0xFD8F, 0xCDEC, 0xDDCD,
    0xAD2A, 0xBD0B, 0x8D68, 0x9D49, 0x7E97, 0x6EB6, 0x5ED5, 0x4EF4, 0x3E13, 0x2E32, 0x1E51, 0x0E70,
    0xFF9F, 0xEFBE, 0xDFDD, 0xCFFC, 0xBF1B, 0xAF3A, 0x9F59, 0x8F78, 0x9188, 0x81A9, 0xB1CA, 0xA1EB,
    0xD10C, 0xC12D, 0xF14E, 0xE16F, 0x1080, 0x00A1, 0x30C2, 0x20E3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83B9, 0x9398, 0xA3FB, 0xB3DA, 0xC33D, 0xD31C, 0xE37F, 0xF35E, 0x02B1, 0x1290, 0x22F3, 0x32D2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xB5EA, 0xA5CB, 0x95A8, 0x8589, 0xF56E, 0xE54F, 0xD52C, 0xC50D,
    0x34E2, 0x24C3, 0x14A0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xA7DB, 0xB7FA, 0x8799, 0x97B8,
    0xE75F, 0xF77E, 0xC71D, 0xD73C, 0x26D3, 0x36F2, 0x0691, 0x16B0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xD94C, 0xC96D, 0xF90E, 0xE92F, 0x99C8, 0x89E9, 0xB98A, 0xA9AB, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18C0, 0x08E1, 0x3882, 0x28A3, 0xCB7D, 0xDB5C, 0xEB3F, 0xFB1E, 0x8BF9, 0x9BD8, 0xABBB, 0xBB9A,
    0x4A75, 0x5A54, 0x6A37, 0x7A16, 0x0AF1, 0x1AD0, 0x2AB3, 0x3A92, 0xFD2E, 0xED0F, 0xDD6C, 0xCD4D,
    0xBDAA, 0xAD8B, 0x9DE8, 0x8DC9, 0x7C26, 0x6C07, 0x5C64, 0x4C45, 0x3CA2, 0x2C83, 0x1CE0, 0x0CC1,
    0xEF1F, 0xFF3E, 0xCF5D, 0xDF7C, 0xAF9B, 0xBFBA, 0x8FD9, 0x9FF8, 0x6E17, 0x7E36, 0x4E55, 0x5E74,
    0x2E93, 0x3EB2, 0x0ED1, 0x1EF0,
};

uint16_t kws_proto_crc16(uint16_t crc, const uint8_t *data, size_t n) {
  for (size_t i = 0; i < n; ++i)
    crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ data[i]) & 0xFF]);
  return crc;
}

void kws_proto_put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v & 0xFF);
  p[1] = (uint8_t)(v >> 8);
}

void kws_proto_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)((v >> (8 * i)) & 0xFF);
}

uint16_t kws_proto_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

uint32_t kws_proto_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

size_t kws_proto_encode(uint8_t type, uint8_t seq, const uint8_t *payload, size_t length,
                        uint8_t *out, size_t cap) {
  const size_t total = KWS_PROTO_HEADER_BYTES + length + KWS_PROTO_CRC_BYTES;
  if (length > KWS_PROTO_MAX_PAYLOAD || total > cap) return 0;
  out[0] = KWS_PROTO_SYNC0;
  out[1] = KWS_PROTO_SYNC1;
  out[2] = type;
  out[3] = seq;
  kws_proto_put_u16(out + 4, (uint16_t)length);
  if (length > 0) memmove(out + KWS_PROTO_HEADER_BYTES, payload, length);
  const uint16_t crc = kws_proto_crc16(0xFFFF, out + 2, KWS_PROTO_HEADER_BYTES - 2 + length);
  kws_proto_put_u16(out + KWS_PROTO_HEADER_BYTES + length, crc);
  return total;
}

void kws_proto_parser_init(kws_proto_parser *p) { memset(p, 0, sizeof(*p)); }

static size_t held(const kws_proto_parser *p) { return p->end - p->start; }

static void drop(kws_proto_parser *p, size_t k) {
  p->start += k;
  if (p->start == p->end) p->start = p->end = 0;
}

static void consume_pending(kws_proto_parser *p) {
  if (p->pending_frame) {
    drop(p, p->pending_frame);
    p->pending_frame = 0;
  }
}

/* Normalise the held bytes so they start with a plausible frame; deliver it when complete.
 * Returns 1 with *frame set, 0 when more bytes are needed (or nothing is held). Each pass of
 * the loop drops at least one byte or returns, so the work is bounded by the bytes held. */
static int scan(kws_proto_parser *p, kws_proto_frame *frame) {
  for (;;) {
    const uint8_t *b = p->buf + p->start;
    const size_t h = held(p);
    if (h == 0) return 0;
    if (b[0] != KWS_PROTO_SYNC0) {
      size_t k = 1;
      while (k < h && b[k] != KWS_PROTO_SYNC0) ++k;
      p->stats.garbage_bytes += (uint32_t)k;
      drop(p, k);
      continue;
    }
    if (h < 2) return 0;
    if (b[1] != KWS_PROTO_SYNC1) {
      p->stats.garbage_bytes += 1;
      drop(p, 1);
      continue;
    }
    if (h < KWS_PROTO_HEADER_BYTES) return 0;
    const size_t length = kws_proto_get_u16(b + 4);
    if (length > KWS_PROTO_MAX_PAYLOAD) {
      p->stats.length_errors += 1;
      drop(p, 1);
      continue;
    }
    const size_t total = KWS_PROTO_HEADER_BYTES + length + KWS_PROTO_CRC_BYTES;
    if (h < total) return 0;
    const uint16_t crc = kws_proto_crc16(0xFFFF, b + 2, KWS_PROTO_HEADER_BYTES - 2 + length);
    if (crc != kws_proto_get_u16(b + KWS_PROTO_HEADER_BYTES + length)) {
      p->stats.crc_errors += 1;
      drop(p, 1);
      continue;
    }
    frame->type = b[2];
    frame->seq = b[3];
    frame->length = (uint16_t)length;
    frame->payload = b + KWS_PROTO_HEADER_BYTES;
    p->pending_frame = total;
    p->stats.frames += 1;
    return 1;
  }
}

/* How many bytes the held candidate still needs (after scan() returned 0). */
static size_t wanted(const kws_proto_parser *p) {
  const size_t h = held(p);
  if (h < KWS_PROTO_HEADER_BYTES) return KWS_PROTO_HEADER_BYTES - h;
  const size_t length = kws_proto_get_u16(p->buf + p->start + 4); /* <= MAX after scan() */
  return KWS_PROTO_HEADER_BYTES + length + KWS_PROTO_CRC_BYTES - h;
}

int kws_proto_parser_feed(kws_proto_parser *p, const uint8_t *data, size_t n, size_t *consumed,
                          kws_proto_frame *frame) {
  size_t used = 0;
  consume_pending(p);
  if (scan(p, frame)) {
    *consumed = 0;
    return 1;
  }
  while (used < n) {
    size_t k = held(p) == 0 ? 1 : wanted(p);
    if (k > n - used) k = n - used;
    /* held + k never exceeds one maximal frame, so compacting always makes room */
    if (p->end + k > sizeof(p->buf)) {
      const size_t h = held(p);
      memmove(p->buf, p->buf + p->start, h);
      p->start = 0;
      p->end = h;
    }
    memcpy(p->buf + p->end, data + used, k);
    p->end += k;
    used += k;
    if (scan(p, frame)) {
      *consumed = used;
      return 1;
    }
  }
  *consumed = used;
  return 0;
}

int kws_proto_parser_flush(kws_proto_parser *p, kws_proto_frame *frame) {
  consume_pending(p);
  for (;;) {
    if (scan(p, frame)) return 1;
    if (held(p) == 0) return 0;
    p->stats.flushes += 1;
    drop(p, 1);
  }
}

int kws_proto_parser_partial(const kws_proto_parser *p) { return held(p) > p->pending_frame; }
