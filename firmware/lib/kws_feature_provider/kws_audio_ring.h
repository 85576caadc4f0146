/*
 * kws_audio_ring: a single-producer single-consumer ring of int16 samples.
 *
 * The audio provider (PDM interrupt on the nRF52840, I2S reader task on the ESP32) writes; the
 * main loop reads. Indices are free-running uint32 counters published with acquire/release
 * atomics (GCC builtins), so the two sides need no lock, on one core or two. When the reader
 * falls behind, the writer drops the samples that do not fit and counts an overrun: the
 * samples already queued stay intact and in order.
 *
 * Portable C99 (+ GCC __atomic builtins), caller-owned storage, no allocation.
 */
#ifndef KWS_AUDIO_RING_H_
#define KWS_AUDIO_RING_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int16_t *data;
  uint32_t capacity;        /* samples; a power of two */
  uint32_t write_count;     /* total samples written (producer) */
  uint32_t read_count;      /* total samples read (consumer) */
  uint32_t overruns;        /* writes that did not fit completely (producer) */
  uint32_t dropped_samples; /* samples lost to those overruns (producer) */
} kws_audio_ring;

/* storage holds capacity samples; capacity must be a power of two. Returns 0, or -1. */
int kws_audio_ring_init(kws_audio_ring *r, int16_t *storage, uint32_t capacity);

/* Producer: queue up to n samples; returns how many fit (the rest are counted as dropped). */
size_t kws_audio_ring_write(kws_audio_ring *r, const int16_t *samples, size_t n);

/* Consumer: samples queued now. */
size_t kws_audio_ring_available(const kws_audio_ring *r);

/* Consumer: take up to n samples (oldest first); returns how many. */
size_t kws_audio_ring_read(kws_audio_ring *r, int16_t *out, size_t n);

/* Consumer: drop everything queued (e.g. while the serial test mode owns the pipeline). */
void kws_audio_ring_discard(kws_audio_ring *r);

/* Either side: overrun counters (a snapshot). */
uint32_t kws_audio_ring_overruns(const kws_audio_ring *r);
uint32_t kws_audio_ring_dropped(const kws_audio_ring *r);

#ifdef __cplusplus
}
#endif

#endif /* KWS_AUDIO_RING_H_ */
