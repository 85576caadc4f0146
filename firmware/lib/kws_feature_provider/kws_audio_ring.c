/* kws_audio_ring: see kws_audio_ring.h. */
#include "kws_audio_ring.h"

#include <string.h>

#define LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)

int kws_audio_ring_init(kws_audio_ring *r, int16_t *storage, uint32_t capacity) {
  if (storage == NULL || capacity == 0 || (capacity & (capacity - 1)) != 0) return -1;
  memset(r, 0, sizeof(*r));
  r->data = storage;
  r->capacity = capacity;
  return 0;
}

size_t kws_audio_ring_write(kws_audio_ring *r, const int16_t *samples, size_t n) {
  const uint32_t w = r->write_count; /* only the producer writes it */
  const uint32_t used = w - LOAD_ACQUIRE(&r->read_count);
  const uint32_t space = r->capacity - used;
  size_t k = n < space ? n : space;
  if (k < n) {
    STORE_RELEASE(&r->overruns, r->overruns + 1);
    STORE_RELEASE(&r->dropped_samples, r->dropped_samples + (uint32_t)(n - k));
  }
  const uint32_t mask = r->capacity - 1;
  for (size_t i = 0; i < k; ++i) r->data[(w + (uint32_t)i) & mask] = samples[i];
  STORE_RELEASE(&r->write_count, w + (uint32_t)k);
  return k;
}

size_t kws_audio_ring_available(const kws_audio_ring *r) {
  return (size_t)(LOAD_ACQUIRE(&r->write_count) - LOAD_RELAXED(&r->read_count));
}

size_t kws_audio_ring_read(kws_audio_ring *r, int16_t *out, size_t n) {
  const uint32_t rd = r->read_count; /* only the consumer writes it */
  const uint32_t avail = LOAD_ACQUIRE(&r->write_count) - rd;
  const size_t k = n < avail ? n : avail;
  const uint32_t mask = r->capacity - 1;
  for (size_t i = 0; i < k; ++i) out[i] = r->data[(rd + (uint32_t)i) & mask];
  STORE_RELEASE(&r->read_count, rd + (uint32_t)k);
  return k;
}

void kws_audio_ring_discard(kws_audio_ring *r) {
  STORE_RELEASE(&r->read_count, LOAD_ACQUIRE(&r->write_count));
}

uint32_t kws_audio_ring_overruns(const kws_audio_ring *r) { return LOAD_ACQUIRE(&r->overruns); }

uint32_t kws_audio_ring_dropped(const kws_audio_ring *r) {
  return LOAD_ACQUIRE(&r->dropped_samples);
}
