/* Instructions per feature frame of firmware/lib/kws_frontend (the board's front end) on
 * 1 s of deterministic test audio: a 440 Hz-ish square-ish tone plus noise. */
#include <stdint.h>

#include "kws_frontend.h"
#include "timer.h"

void m4sim_print(const char *s);
void m4sim_print_u(uint64_t v);

static kws_frontend_state g_state;
static int16_t g_audio[KWS_FRONTEND_CLIP_SAMPLES];

void m4sim_frontend_bench(void) {
  uint32_t seed = 777;
  for (int i = 0; i < KWS_FRONTEND_CLIP_SAMPLES; ++i) {
    seed = seed * 1664525u + 1013904223u;
    int tone = ((i / 18) & 1) ? 3000 : -3000;
    g_audio[i] = (int16_t)(tone + ((int32_t)(seed >> 16) & 0x7FF) - 1024);
  }
  kws_frontend_init(&g_state);
  uint16_t out[KWS_FRONTEND_NUM_CHANNELS];
  const int16_t *p = g_audio;
  size_t left = KWS_FRONTEND_CLIP_SAMPLES;
  uint64_t total = 0, max = 0;
  uint32_t frames = 0;
  while (left > 0) {
    size_t consumed = 0;
    uint32_t t0 = m4sim_ticks();
    int got = kws_frontend_process(&g_state, p, left, &consumed, out);
    uint64_t ins = m4sim_instructions(m4sim_ticks() - t0);
    if (consumed == 0) break;
    p += consumed;
    left -= consumed;
    if (got) {
      /* Each call that yields a frame consumed one stride (the first: one window). */
      total += ins;
      if (ins > max) max = ins;
      ++frames;
    }
  }
  m4sim_print("M4SIM frontend");
  m4sim_print(" frames=");
  m4sim_print_u(frames);
  m4sim_print(" instructions_per_frame=");
  m4sim_print_u(frames ? total / frames : 0);
  m4sim_print(" instructions_max=");
  m4sim_print_u(max);
  m4sim_print("\n");
}
