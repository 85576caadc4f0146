/* Small integer helpers shared by the front end's stages (internal header). */
#ifndef KWS_FIXED_H_
#define KWS_FIXED_H_

#include <stdint.h>

/* Number of bits needed to hold x (0 for 0): 32 - count of leading zeros. */
static inline int kws_msb32(uint32_t x) {
#if defined(__GNUC__)
  return x ? 32 - __builtin_clz(x) : 0;
#else
  int n = 0;
  while (x) {
    ++n;
    x >>= 1;
  }
  return n;
#endif
}

static inline int kws_msb64(uint64_t x) {
  const uint32_t hi = (uint32_t)(x >> 32);
  return hi ? 32 + kws_msb32(hi) : kws_msb32((uint32_t)x);
}

/* Two's-complement truncation to 16 / 32 bits. GCC and Clang define narrowing conversions as
 * reduction modulo 2^N, so there a plain cast is exact and free; elsewhere the portable form. */
#if defined(__GNUC__)
static inline int16_t kws_wrap16(int32_t v) { return (int16_t)v; }
static inline int32_t kws_wrap32(int64_t v) { return (int32_t)v; }
#else
static inline int16_t kws_wrap16(int32_t v) {
  return (int16_t)((int32_t)(((uint32_t)v & 0xFFFFu) ^ 0x8000u) - 0x8000);
}
static inline int32_t kws_wrap32(int64_t v) {
  return (int32_t)((int64_t)(((uint64_t)v & 0xFFFFFFFFull) ^ 0x80000000ull) - 0x80000000ll);
}
#endif

#endif /* KWS_FIXED_H_ */
