// kwstool firmware: listens to the microphone and prints a line per detected keyword.
//
// Live mode (default): microphone -> audio ring -> kws_listener (every queued frame through the
// feature provider, the model every KWS_INFERENCE_PERIOD_MS of audio) -> recognizer ->
// responder ("DETECTED yes score=0.93 t=12840ms" + LED), plus a STATS line every
// KWS_STATS_PERIOD_MS. Serial test mode: when the host sends a HELLO frame (kwstool
// device-test), live listening pauses and the same pipeline processes the PCM the host streams
// (kws_session); BYE, or 10 s without a frame, returns to live mode. This file is glue: the
// loop's logic is in lib/kws_listener, which the host tests run in simulated real time.
#include <Arduino.h>
#include <stdio.h>
#include <string.h>

#include "audio_provider.h"
#include "board_config.h"
#include "kws_audio_ring.h"
#include "kws_listener.h"
#include "kws_pipeline.h"
#include "kws_protocol.h"
#include "kws_recognizer.h"
#include "kws_session.h"
#include "model/kws_model_data.h"
#include "model_runner.h"
#include "responder.h"

// The exported model must have been trained on exactly what the C front end computes.
static_assert(KWS_FEATURE_SAMPLE_RATE == KWS_FRONTEND_SAMPLE_RATE,
              "model trained at another sample rate");
static_assert(KWS_FEATURE_WINDOW_MS == KWS_FRONTEND_WINDOW_MS, "model trained with another window");
static_assert(KWS_FEATURE_STRIDE_MS == KWS_FRONTEND_STRIDE_MS, "model trained with another stride");
static_assert(KWS_FEATURE_CHANNELS == KWS_FRONTEND_NUM_CHANNELS, "model trained on other channels");
static_assert(KWS_MODEL_INPUT_CHANNELS == KWS_FRONTEND_NUM_CHANNELS,
              "model input is not 40 channels wide");
static_assert(KWS_MODEL_INPUT_FRAMES == KWS_FRONTEND_CLIP_FRAMES,
              "model input is not 49 frames long");
static_assert(KWS_MODEL_NUM_LABELS <= KWS_RECOGNIZER_MAX_LABELS,
              "too many labels for the recognizer");

// The live loop's cadence and the per-label thresholds come from the export.
#ifndef KWS_INFERENCE_PERIOD_MS
#error "kws_model_data.h defines no KWS_INFERENCE_PERIOD_MS: re-export the model (kwstool export)"
#endif
#ifndef KWS_RECOGNIZER_THRESHOLDS
#error "kws_model_data.h defines no KWS_RECOGNIZER_THRESHOLDS: re-export the model (kwstool export)"
#endif
#ifndef KWS_RECOGNIZER_MINIMUM_COVERAGE_MS
// clang-format off
#error "kws_model_data.h defines no KWS_RECOGNIZER_MINIMUM_COVERAGE_MS: re-export the model (kwstool export)"
// clang-format on
#endif
static_assert(
    KWS_INFERENCE_PERIOD_MS > 0 && KWS_INFERENCE_PERIOD_MS % KWS_FRONTEND_STRIDE_MS == 0,
    "KWS_INFERENCE_PERIOD_MS must be a multiple of the 20 ms stride; re-export the model");
static_assert(KWS_RECOGNIZER_AVERAGE_WINDOW_MS <= KWS_RECOGNIZER_MAX_WINDOW_MS,
              "recognizer window too long; re-export the model");
constexpr uint8_t kThresholds[] = KWS_RECOGNIZER_THRESHOLDS;
static_assert(sizeof(kThresholds) == KWS_MODEL_NUM_LABELS,
              "KWS_RECOGNIZER_THRESHOLDS needs one entry per label; re-export the model");

namespace {

int16_t g_ring_storage[KWS_AUDIO_RING_SAMPLES];
kws_audio_ring g_ring;
kws_pipeline g_pipeline;
kws_session g_session;
kws_listener g_listener;
char g_info[KWS_PROTO_MAX_PAYLOAD];
const char* g_model_error = nullptr;
const char* g_audio_error = nullptr;

uint32_t g_period_start_ms = 0;  // wall time at the start of the STATS period
kws_mic_status g_mic_reported = KWS_MIC_UNKNOWN;

uint32_t clock_us(void*) { return micros(); }

void serial_write(void*, const uint8_t* data, size_t n) { Serial.write(data, n); }

int no_model(void*, const int8_t*, int8_t*) { return -1; }

// "a,b,c" into out (bounded).
void join_labels(char* out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < KWS_MODEL_NUM_LABELS; ++i) {
    const int w = snprintf(out + n, cap - n, "%s%s", i ? "," : "", kws_model_labels[i]);
    if (w < 0 || static_cast<size_t>(w) >= cap - n) break;
    n += static_cast<size_t>(w);
  }
}

// "200,180,..." into out (bounded).
void join_thresholds(const kws_recognizer_config& rc, char* out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < rc.num_labels; ++i) {
    const int w = snprintf(out + n, cap - n, "%s%u", i ? "," : "", rc.thresholds[i]);
    if (w < 0 || static_cast<size_t>(w) >= cap - n) break;
    n += static_cast<size_t>(w);
  }
}

void build_info(const ModelRunnerInfo& mi, const char* labels, const char* thresholds) {
  const kws_recognizer_config& rc = g_pipeline.config.recognizer;
  snprintf(g_info, sizeof(g_info),
           "proto=%d\nboard=%s\nmodel=%s\nmodel_ok=%d\nmodel_bytes=%lu\narena_bytes=%lu\n"
           "arena_used=%lu\nlabels=%s\nframes=%d\nchannels=%d\nsample_rate=%d\nstride_ms=%d\n"
           "inference_period_ms=%d\naverage_window_ms=%lu\nthresholds=%s\nsuppression_ms=%lu\n"
           "minimum_coverage_ms=%lu\nmax_audio_samples=%d\n",
           KWS_PROTO_VERSION, KWS_BOARD_NAME, KWS_MODEL_NAME, g_model_error == nullptr ? 1 : 0,
           static_cast<unsigned long>(mi.model_bytes), static_cast<unsigned long>(mi.arena_bytes),
           static_cast<unsigned long>(mi.arena_used), labels, KWS_FRONTEND_CLIP_FRAMES,
           KWS_FRONTEND_NUM_CHANNELS, KWS_FRONTEND_SAMPLE_RATE, KWS_FRONTEND_STRIDE_MS,
           KWS_INFERENCE_PERIOD_MS, static_cast<unsigned long>(rc.average_window_ms), thresholds,
           static_cast<unsigned long>(rc.suppression_ms),
           static_cast<unsigned long>(rc.minimum_coverage_ms), KWS_PROTO_MAX_PAYLOAD / 2);
}

void report_errors() {
  if (g_model_error != nullptr) {
    Serial.print("ERROR model: ");
    Serial.println(g_model_error);
  }
  if (g_audio_error != nullptr) {
    Serial.print("ERROR microphone: ");
    Serial.println(g_audio_error);
  }
}

// One ERROR line each time the microphone check's verdict turns bad (or changes).
void report_microphone() {
  const kws_mic_status mic = kws_listener_mic_status(&g_listener);
  if (mic == g_mic_reported || mic == KWS_MIC_UNKNOWN) return;
  g_mic_reported = mic;
  const char* why = audio_provider_diagnose(mic);
  if (why == nullptr) return;
  Serial.print("ERROR microphone: ");
  Serial.println(why);
}

void report_stats(uint32_t now_ms) {
  if (now_ms - g_period_start_ms < KWS_STATS_PERIOD_MS) return;
  g_period_start_ms = now_ms;
  kws_listener_stats s;
  kws_listener_take_stats(&g_listener, &s);
  char line[240];
  snprintf(line, sizeof(line),
           "STATS frames=%lu feature_us=%lu inferences=%lu inference_us=%lu inference_us_max=%lu "
           "overruns=%lu dropped_samples=%lu level_peak=%ld mic=%s",
           static_cast<unsigned long>(s.frames),
           static_cast<unsigned long>(s.frames ? s.feature_us / s.frames : 0),
           static_cast<unsigned long>(s.inferences),
           static_cast<unsigned long>(s.inferences ? s.inference_us / s.inferences : 0),
           static_cast<unsigned long>(s.inference_us_max), static_cast<unsigned long>(s.overruns),
           static_cast<unsigned long>(s.dropped_samples), static_cast<long>(s.level_peak),
           kws_mic_status_name(kws_listener_mic_status(&g_listener)));
  Serial.println(line);
  report_errors();
}

// One pass: everything the microphone queued up to the next inference point, and that inference.
void listen_step() {
  kws_pipeline_result r;
  if (kws_listener_step(&g_listener, &r) == 1 && r.recognition.detected) {
    responder_detection(kws_model_labels[r.recognition.label], r.recognition.score,
                        r.recognition.time_ms, millis());
  }
  report_microphone();
}

}  // namespace

void setup() {
#if defined(KWS_BOARD_ESP32DEV)
  Serial.setRxBufferSize(2 * KWS_PROTO_MAX_FRAME);  // before begin(); one test-mode frame fits
#endif
  Serial.begin(KWS_SERIAL_BAUD);
  const uint32_t t0 = millis();
  while (!Serial && millis() - t0 < 2000) {
  }  // the Nano's USB serial: give the host a moment to open the port
  responder_init();

  ModelRunnerInfo mi = {};
  mi.input_scale = KWS_MODEL_INPUT_SCALE;
  mi.input_zero_point = KWS_MODEL_INPUT_ZERO_POINT;
  mi.output_scale = KWS_MODEL_OUTPUT_SCALE;
  mi.output_zero_point = KWS_MODEL_OUTPUT_ZERO_POINT;
  mi.model_bytes = kws_model_data_len;
  if (!model_runner_init(&mi, &g_model_error)) mi.arena_used = 0;

  kws_pipeline_config pc = {};
  pc.invoke = g_model_error == nullptr ? model_runner_invoke : no_model;
  pc.micros = clock_us;
  pc.model_input = g_model_error == nullptr ? model_runner_input() : nullptr;
  pc.num_labels = KWS_MODEL_NUM_LABELS;
  pc.input_scale = mi.input_scale;
  pc.input_zero_point = mi.input_zero_point;
  pc.output_scale = mi.output_scale;
  pc.output_zero_point = mi.output_zero_point;
  pc.recognizer.average_window_ms = KWS_RECOGNIZER_AVERAGE_WINDOW_MS;
  pc.recognizer.suppression_ms = KWS_RECOGNIZER_SUPPRESSION_MS;
  memcpy(pc.recognizer.thresholds, kThresholds, sizeof(kThresholds));
  pc.recognizer.minimum_coverage_ms = KWS_RECOGNIZER_MINIMUM_COVERAGE_MS;
  pc.recognizer.num_labels = KWS_MODEL_NUM_LABELS;
  pc.recognizer.ignore_mask = kws_recognizer_ignore_mask(kws_model_labels, KWS_MODEL_NUM_LABELS);
  if (kws_pipeline_init(&g_pipeline, &pc) != 0 && g_model_error == nullptr) {
    g_model_error = "recognizer defaults in kws_model_data.h are invalid; re-export the model";
  }

  kws_audio_ring_init(&g_ring, g_ring_storage, KWS_AUDIO_RING_SAMPLES);
  kws_listener_config lc = {};
  lc.pipeline = &g_pipeline;
  lc.ring = &g_ring;
  lc.inference_period_ms = KWS_INFERENCE_PERIOD_MS;
  kws_listener_init(&g_listener, &lc);  // the static_asserts above make the period valid

  char labels[400];
  join_labels(labels, sizeof(labels));
  char thresholds[4 * KWS_RECOGNIZER_MAX_LABELS + 1];
  join_thresholds(pc.recognizer, thresholds, sizeof(thresholds));
  build_info(mi, labels, thresholds);
  kws_session_config sc = {};
  sc.pipeline = &g_pipeline;
  sc.write = serial_write;
  sc.info = g_info;
  sc.labels = kws_model_labels;
  sc.audio = &g_ring;
  sc.idle_timeout_ms = KWS_TEST_MODE_IDLE_MS;
  kws_session_init(&g_session, &sc);

  char line[320];
  snprintf(
      line, sizeof(line), "KWS board=%s model=%s model_bytes=%lu arena_used=%lu arena_bytes=%lu",
      KWS_BOARD_NAME, KWS_MODEL_NAME, static_cast<unsigned long>(mi.model_bytes),
      static_cast<unsigned long>(mi.arena_used), static_cast<unsigned long>(KWS_MODEL_ARENA_BYTES));
  Serial.println(line);
  Serial.print("KWS labels=");
  Serial.println(labels);
  snprintf(line, sizeof(line),
           "KWS recognizer inference_period_ms=%d average_window_ms=%lu thresholds=%s "
           "suppression_ms=%lu minimum_coverage_ms=%lu",
           KWS_INFERENCE_PERIOD_MS, static_cast<unsigned long>(pc.recognizer.average_window_ms),
           thresholds, static_cast<unsigned long>(pc.recognizer.suppression_ms),
           static_cast<unsigned long>(pc.recognizer.minimum_coverage_ms));
  Serial.println(line);
  if (g_model_error == nullptr && (mi.input_scale != KWS_MODEL_INPUT_SCALE ||
                                   mi.input_zero_point != KWS_MODEL_INPUT_ZERO_POINT)) {
    Serial.println(
        "WARN model input quantization differs from kws_model_data.h; using the model's");
  }
  if (g_model_error != nullptr) {
    Serial.print("ERROR model: ");
    Serial.println(g_model_error);
  }

  if (!audio_provider_start(&g_ring, &g_audio_error)) {
    Serial.print("ERROR microphone: ");
    Serial.println(g_audio_error);
  } else {
    Serial.println("KWS listening");
  }
  kws_listener_restart(&g_listener);
  g_period_start_ms = millis();
}

static bool g_was_testing = false;

void loop() {
  const uint32_t now = millis();
  uint8_t rx[64];
  size_t n = 0;
  while (n < sizeof(rx) && Serial.available() > 0) {
    const int c = Serial.read();
    if (c < 0) break;
    rx[n++] = static_cast<uint8_t>(c);
  }
  if (n > 0) kws_session_receive(&g_session, rx, n, now);
  kws_session_poll(&g_session, now);
  responder_poll(now);

  if (kws_session_active(&g_session)) {
    kws_audio_ring_discard(&g_ring);  // the host owns the pipeline; live audio is not used
    g_was_testing = true;
    return;
  }
  if (g_was_testing) {  // back from the test mode: a fresh live stream and STATS period
    g_was_testing = false;
    kws_listener_restart(&g_listener);
    g_period_start_ms = now;
  }
  listen_step();
  report_stats(now);
}
