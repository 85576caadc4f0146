/*
 * listener_sim: the firmware's live loop (firmware/lib/kws_listener + pipeline + recognizer)
 * on the host, in simulated real time, for tests/firmware/test_listener_stream.py.
 *
 * A simulated microsecond clock drives everything. The "ISR" writes the audio (raw int16 from
 * --audio) into the 512 ms ring in chunks of --chunk samples (PDM on the Nano: 512) at the
 * moment each chunk is complete at 16 kHz. The main loop calls kws_listener_step() as the
 * board's loop() does; the front end costs --feature-us per frame, each model invocation
 * --inference-ms of simulated time (during which the ISR keeps writing), an empty pass
 * --loop-us. When the ring is empty the loop idles until the next chunk.
 *
 * The model is either a deterministic fake (--model fake: each output a fixed function of the
 * window, so scores vary with the audio) or the real one over pipes (--model-out FD
 * --model-in FD: 'M' + the 1960 int8 inputs out, num_labels int8 outputs back, served by the
 * tflite-micro interpreter in Python, as for host_board).
 *
 * --legacy 1 runs the loop this module replaced instead (main.cpp before kws_listener: at most 8
 * frames of audio per pass, then one inference if a frame completed), for comparison.
 *
 * Output, one line each:
 *   INFER <frame> <time_ms> <score0,score1,...>     every inference (uint8 recognizer scores)
 *   DETECT <label> <score> <time_ms>               every detection
 *   STATS <dropped_samples> <overruns> <inferences> <inference_us_max>   per 5 s of audio
 *   TOTAL frames=N inferences=N dropped_samples=N overruns=N samples=N
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kws_audio_ring.h"
#include "kws_listener.h"
#include "kws_pipeline.h"
#include "kws_recognizer.h"

#define RING_SAMPLES 8192 /* the firmware's KWS_AUDIO_RING_SAMPLES */
#define MAX_LABELS KWS_RECOGNIZER_MAX_LABELS

static uint64_t g_now_us = 0;
static uint64_t g_next_isr_us = 0;
static const int16_t *g_audio = NULL;
static size_t g_total = 0, g_written = 0, g_chunk = 512;
static kws_audio_ring g_ring;
static uint32_t g_inference_us = 60000;
static int g_model_in = -1, g_model_out = -1;
static uint8_t g_num_labels = 4;

/* time passes: every chunk completed by now is written by the "ISR" */
static void advance(uint64_t us) {
  g_now_us += us;
  while (g_written < g_total && g_next_isr_us <= g_now_us) {
    const size_t n = g_total - g_written < g_chunk ? g_total - g_written : g_chunk;
    kws_audio_ring_write(&g_ring, g_audio + g_written, n);
    g_written += n;
    g_next_isr_us += (uint64_t)g_chunk * 1000000u / KWS_FRONTEND_SAMPLE_RATE;
  }
}

static uint32_t sim_micros(void *ctx) {
  (void)ctx;
  return (uint32_t)g_now_us;
}

static int fake_model(void *ctx, const int8_t *input, int8_t *output) {
  (void)ctx;
  advance(g_inference_us);
  for (uint8_t i = 0; i < g_num_labels; ++i) {
    int32_t acc = 0;
    for (int k = 0; k < KWS_FP_WINDOW_VALUES; k += 7 + i) acc += input[k];
    output[i] = (int8_t)((acc >> 4) & 0xFF);
  }
  return 0;
}

static int io_all(int fd, uint8_t *p, size_t n, int wr) {
  while (n > 0) {
    const ssize_t k = wr ? write(fd, p, n) : read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int pipe_model(void *ctx, const int8_t *input, int8_t *output) {
  (void)ctx;
  advance(g_inference_us);
  uint8_t tag = 'M';
  if (io_all(g_model_out, &tag, 1, 1) != 0 ||
      io_all(g_model_out, (uint8_t *)input, KWS_FP_WINDOW_VALUES, 1) != 0 ||
      io_all(g_model_in, (uint8_t *)output, g_num_labels, 0) != 0) {
    return -1;
  }
  return 0;
}

/* the old main.cpp listen_step(): at most 8 x 320 samples, then one inference */
static int legacy_step(kws_pipeline *p, kws_pipeline_result *r) {
  static int16_t chunk[KWS_FRONTEND_STRIDE_SAMPLES];
  int new_frames = 0;
  for (int i = 0; i < 8; ++i) {
    const size_t got = kws_audio_ring_read(&g_ring, chunk, KWS_FRONTEND_STRIDE_SAMPLES);
    if (got == 0) break;
    size_t pos = 0;
    while (pos < got) {
      size_t used = 0;
      new_frames += kws_pipeline_feed(p, chunk + pos, got - pos, &used);
      pos += used;
    }
  }
  if (new_frames == 0) return 0;
  return kws_pipeline_infer(p, r) < 0 ? -1 : 1;
}

static int16_t *read_audio(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  const long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  int16_t *a = malloc((size_t)bytes);
  *n = a != NULL && fread(a, 1, (size_t)bytes, f) == (size_t)bytes ? (size_t)bytes / 2 : 0;
  fclose(f);
  return a;
}

static void parse_thresholds(const char *v, kws_recognizer_config *rc) {
  uint8_t k = 0;
  for (const char *c = v; *c && k < MAX_LABELS; ++k) {
    char *end = NULL;
    rc->thresholds[k] = (uint8_t)strtoul(c, &end, 10);
    c = *end == ',' ? end + 1 : end;
  }
  if (k == 1) kws_recognizer_set_threshold(rc, rc->thresholds[0]);
}

int main(int argc, char **argv) {
  static kws_pipeline pipeline;
  static kws_listener listener;
  static int16_t storage[RING_SAMPLES];
  kws_pipeline_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.input_scale = 1.0f;
  pc.output_scale = 1.0f / 256.0f;
  pc.output_zero_point = -128;
  pc.recognizer.average_window_ms = 1000;
  pc.recognizer.suppression_ms = 1500;
  pc.recognizer.minimum_coverage_ms = 200;
  kws_recognizer_set_threshold(&pc.recognizer, 200);
  uint32_t period_ms = 100, feature_us = 812, loop_us = 50, ignore_mask = 0x3;
  const char *audio_path = NULL;
  int fake = 1, legacy = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--audio"))
      audio_path = v;
    else if (!strcmp(a, "--period-ms"))
      period_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--inference-ms"))
      g_inference_us = (uint32_t)(strtod(v, NULL) * 1000.0);
    else if (!strcmp(a, "--feature-us"))
      feature_us = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--loop-us"))
      loop_us = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--legacy"))
      legacy = atoi(v);
    else if (!strcmp(a, "--chunk"))
      g_chunk = (size_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--labels"))
      g_num_labels = (uint8_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--ignore-mask"))
      ignore_mask = (uint32_t)strtoul(v, NULL, 0);
    else if (!strcmp(a, "--window-ms"))
      pc.recognizer.average_window_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--suppression-ms"))
      pc.recognizer.suppression_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--min-coverage-ms"))
      pc.recognizer.minimum_coverage_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--thresholds"))
      parse_thresholds(v, &pc.recognizer);
    else if (!strcmp(a, "--output-scale"))
      pc.output_scale = strtof(v, NULL);
    else if (!strcmp(a, "--output-zero-point"))
      pc.output_zero_point = (int32_t)strtol(v, NULL, 10);
    else if (!strcmp(a, "--model-in"))
      g_model_in = atoi(v), fake = 0;
    else if (!strcmp(a, "--model-out"))
      g_model_out = atoi(v), fake = 0;
    else {
      fprintf(stderr, "listener_sim: unknown option %s\n", a);
      return 2;
    }
  }
  g_audio = audio_path ? read_audio(audio_path, &g_total) : NULL;
  if (g_audio == NULL || g_total == 0 || g_chunk == 0 || g_chunk > RING_SAMPLES) {
    fprintf(stderr, "listener_sim: need --audio FILE (raw int16) and 0 < --chunk <= %d\n",
            RING_SAMPLES);
    return 2;
  }
  pc.invoke = fake ? fake_model : pipe_model;
  pc.micros = sim_micros;
  pc.num_labels = g_num_labels;
  pc.recognizer.num_labels = g_num_labels;
  pc.recognizer.ignore_mask = ignore_mask;
  kws_audio_ring_init(&g_ring, storage, RING_SAMPLES);
  kws_listener_config lc = {&pipeline, &g_ring, period_ms};
  if (kws_pipeline_init(&pipeline, &pc) != 0 || kws_listener_init(&listener, &lc) != 0) {
    fprintf(stderr, "listener_sim: invalid settings\n");
    return 2;
  }
  g_next_isr_us = (uint64_t)g_chunk * 1000000u / KWS_FRONTEND_SAMPLE_RATE;

  uint64_t next_stats_us = 5000000u;
  uint32_t frames = 0, inferences = 0, dropped = 0, overruns = 0;
  kws_listener_stats st;
  for (;;) {
    const uint32_t before = pipeline.features.frames;
    kws_pipeline_result r;
    const int status = legacy ? legacy_step(&pipeline, &r) : kws_listener_step(&listener, &r);
    advance((uint64_t)(pipeline.features.frames - before) * feature_us + loop_us);
    if (status == 1) {
      printf("INFER %u %u ", (unsigned)r.frame, (unsigned)r.time_ms);
      for (uint8_t i = 0; i < g_num_labels; ++i) printf("%s%u", i ? "," : "", r.scores[i]);
      printf("\n");
      if (r.recognition.detected) {
        printf("DETECT %u %u %u\n", r.recognition.label, r.recognition.score,
               (unsigned)r.recognition.time_ms);
      }
    } else if (status < 0) {
      printf("MODEL_ERROR %u\n", (unsigned)r.frame);
    }
    const int done =
        g_written == g_total && kws_audio_ring_available(&g_ring) == 0 && (status == 0 || legacy);
    if (g_now_us >= next_stats_us || done) { /* a STATS period, and the last, partial one */
      kws_listener_take_stats(&listener, &st);
      printf("STATS %u %u %u %u\n", (unsigned)st.dropped_samples, (unsigned)st.overruns,
             (unsigned)st.inferences, (unsigned)st.inference_us_max);
      frames += st.frames;
      inferences += st.inferences;
      dropped += st.dropped_samples;
      overruns += st.overruns;
      next_stats_us += 5000000u;
    }
    if (done) break;
    if ((status == 0 || (legacy && kws_audio_ring_available(&g_ring) == 0)) &&
        g_next_isr_us > g_now_us) {
      advance(g_next_isr_us - g_now_us); /* idle until the next chunk */
    }
  }
  if (legacy) { /* the listener did not run: count from the pipeline */
    frames = pipeline.stats.frames;
    inferences = pipeline.stats.inferences;
  }
  printf("TOTAL frames=%u inferences=%u dropped_samples=%u overruns=%u samples=%lu\n",
         (unsigned)frames, (unsigned)inferences, (unsigned)dropped, (unsigned)overruns,
         (unsigned long)g_total);
  free((void *)g_audio);
  return 0;
}
