// Audio provider for the Arduino Nano 33 BLE Sense: the on-board MP34DT05 PDM microphone through
// the Arduino mbed core's PDM library (nRF52840 PDM peripheral, 16 kHz, mono, int16).
//
// The library double-buffers in its interrupt and calls our onReceive callback, still in
// interrupt context, each time a buffer is full. If that buffer is not read before the next one
// completes, the library stops the peripheral, so the callback only copies the samples into the
// lock-free ring (a few microseconds) and returns.
#if defined(KWS_BOARD_NANO33BLE)

#include <Arduino.h>
#include <PDM.h>

#include "audio_provider.h"
#include "board_config.h"

namespace {

kws_audio_ring* g_ring = nullptr;
int16_t g_pdm_samples[KWS_PDM_BUFFER_BYTES / 2];

void on_pdm_data() {
  int bytes = PDM.available();
  if (bytes > static_cast<int>(sizeof(g_pdm_samples))) bytes = sizeof(g_pdm_samples);
  const int got = PDM.read(g_pdm_samples, bytes);
  if (got > 0 && g_ring != nullptr) kws_audio_ring_write(g_ring, g_pdm_samples, got / 2);
}

}  // namespace

bool audio_provider_start(kws_audio_ring* ring, const char** error) {
  g_ring = ring;
  PDM.onReceive(on_pdm_data);
  PDM.setBufferSize(KWS_PDM_BUFFER_BYTES);  // before begin(): begin() resets the double buffer
  if (!PDM.begin(1, 16000)) {
    *error =
        "PDM.begin(1, 16000) failed: is this a Nano 33 BLE *Sense* (the plain one has no "
        "microphone)?";
    return false;
  }
  PDM.setGain(KWS_PDM_GAIN);
  return true;
}

const char* audio_provider_diagnose(kws_mic_status status) {
  switch (status) {
    case KWS_MIC_SILENT:
    case KWS_MIC_STUCK:
    case KWS_MIC_FLOATING:
      return "PDM samples constant for 1 s: the microphone is not running; power-cycle the board "
             "(is it a Nano 33 BLE *Sense*?)";
    case KWS_MIC_FULL_SCALE:
      return "PDM samples at full scale for 1 s: lower KWS_PDM_GAIN in platformio.ini";
    default:
      return nullptr;
  }
}

#endif  // KWS_BOARD_NANO33BLE
