/* Host test of the C front end's streaming contract: feeding a stream in chunks of any size
 * gives the same frames as feeding it whole, and clip_int8 equals process + to_int8.
 * Prints "N passed, M failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws_frontend.h"

#define STREAM 24000
#define MAXF 80

static int failures = 0, passes = 0;

static void check(int ok, const char *what) {
  if (ok) {
    ++passes;
  } else {
    ++failures;
    printf("FAIL: %s\n", what);
  }
}

static size_t run_chunked(const int16_t *x, size_t n, size_t chunk, uint16_t *out) {
  static kws_frontend_state s;
  kws_frontend_init(&s);
  size_t frames = 0, pos = 0;
  while (pos < n) {
    size_t len = (n - pos < chunk) ? n - pos : chunk;
    const int16_t *p = x + pos;
    while (len > 0) {
      size_t used = 0;
      if (kws_frontend_process(&s, p, len, &used, out + frames * KWS_FRONTEND_NUM_CHANNELS))
        ++frames;
      p += used;
      len -= used;
      pos += used;
    }
  }
  return frames;
}

int main(void) {
  static int16_t x[STREAM];
  static uint16_t whole[MAXF * 40], part[MAXF * 40];
  unsigned seed = 12345;
  for (int i = 0; i < STREAM; ++i) {
    seed = seed * 1103515245u + 12345u;
    x[i] = (int16_t)((int)((seed >> 16) % 20001) - 10000);
  }
  const size_t nwhole = run_chunked(x, STREAM, STREAM, whole);
  check(nwhole == 1 + (STREAM - 480) / 320, "frame count of a 1.5 s stream");
  const size_t chunks[] = {1, 7, 160, 320, 479, 480, 481, 1000};
  for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); ++c) {
    memset(part, 0, sizeof(part));
    const size_t n = run_chunked(x, STREAM, chunks[c], part);
    char what[64];
    snprintf(what, sizeof what, "chunk size %u gives identical frames", (unsigned)chunks[c]);
    check(n == nwhole && memcmp(part, whole, n * 40 * sizeof(uint16_t)) == 0, what);
  }
  static kws_frontend_state s;
  static int8_t clip[49 * 40];
  int8_t mapped[40];
  const size_t got = kws_frontend_clip_int8(&s, x, 16000, clip, 49);
  int same = got == 49;
  for (int f = 0; f < 49 && same; ++f) {
    kws_frontend_to_int8(whole + f * 40, mapped);
    same = memcmp(mapped, clip + f * 40, 40) == 0;
  }
  check(same, "clip_int8 equals process + to_int8 on the first second");
  check(kws_frontend_clip_int8(&s, x, 479, clip, 49) == 0, "479 samples give no frame");
  check(kws_frontend_clip_int8(&s, x, 16000, clip, 10) == 10, "max_frames is respected");
  printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
