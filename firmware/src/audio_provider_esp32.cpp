// Audio provider for an ESP32 DevKit with an I2S MEMS microphone (INMP441 or similar: 24-bit
// samples, MSB first, in 32-bit slots), through the ESP-IDF 4.4 I2S driver of the Arduino-ESP32
// 2.0.x core (driver/i2s.h). Pins and the slot come from build flags (board_config.h).
//
// A FreeRTOS task on core 0 (the Arduino loop runs on core 1) blocks in i2s_read() on the
// driver's DMA buffers, converts each 32-bit slot to int16 (arithmetic shift, saturated) and
// queues the samples in the lock-free ring.
//
// A wrong slot is the usual first-boot problem: the INMP441 drives only the slot its L/R pin
// selects and leaves the other one at zero, and ESP-IDF 4.4's ONLY_LEFT / ONLY_RIGHT formats
// are known to read the opposite slot with some driver versions (esp-idf issue 9635, "I2S
// left and right channels are swapped"). So KWS_I2S_RIGHT_SLOT is a build flag, and the main
// loop reports a second of all-zero or constant samples (kws_listener's microphone check) with
// the flag to flip. A data line that is not connected floats: it reads as -1/0 (after the
// shift) or as full-scale noise, reported the same way.
#if defined(KWS_BOARD_ESP32DEV)

#include <Arduino.h>
#include <driver/i2s.h>

#include "audio_provider.h"
#include "board_config.h"

namespace {

constexpr i2s_port_t kPort = I2S_NUM_0;
kws_audio_ring* g_ring = nullptr;
int32_t g_slots[KWS_I2S_READ_SAMPLES];
int16_t g_samples[KWS_I2S_READ_SAMPLES];

void i2s_reader_task(void*) {
  for (;;) {
    size_t bytes = 0;
    if (i2s_read(kPort, g_slots, sizeof(g_slots), &bytes, portMAX_DELAY) != ESP_OK) continue;
    const size_t n = bytes / sizeof(int32_t);
    for (size_t i = 0; i < n; ++i) {
      int32_t v = g_slots[i] >> KWS_I2S_SHIFT;
      if (v > 32767) v = 32767;
      if (v < -32768) v = -32768;
      g_samples[i] = static_cast<int16_t>(v);
    }
    kws_audio_ring_write(g_ring, g_samples, n);
  }
}

}  // namespace

bool audio_provider_start(kws_audio_ring* ring, const char** error) {
  g_ring = ring;
  i2s_config_t config = {};
  config.mode = static_cast<i2s_mode_t>(I2S_MODE_MASTER | I2S_MODE_RX);
  config.sample_rate = 16000;
  config.bits_per_sample = I2S_BITS_PER_SAMPLE_32BIT;
  config.channel_format =
      KWS_I2S_RIGHT_SLOT ? I2S_CHANNEL_FMT_ONLY_RIGHT : I2S_CHANNEL_FMT_ONLY_LEFT;
  config.communication_format = I2S_COMM_FORMAT_STAND_I2S;
  config.intr_alloc_flags = ESP_INTR_FLAG_LEVEL1;
  config.dma_buf_count = 4;
  config.dma_buf_len = KWS_I2S_READ_SAMPLES;
  config.use_apll = false;
  if (i2s_driver_install(kPort, &config, 0, nullptr) != ESP_OK) {
    *error = "i2s_driver_install failed";
    return false;
  }
  i2s_pin_config_t pins = {};
  pins.mck_io_num = I2S_PIN_NO_CHANGE;
  pins.bck_io_num = KWS_I2S_SCK_PIN;
  pins.ws_io_num = KWS_I2S_WS_PIN;
  pins.data_out_num = I2S_PIN_NO_CHANGE;
  pins.data_in_num = KWS_I2S_SD_PIN;
  if (i2s_set_pin(kPort, &pins) != ESP_OK) {
    *error = "i2s_set_pin failed: check KWS_I2S_*_PIN in platformio.ini";
    return false;
  }
  if (xTaskCreatePinnedToCore(i2s_reader_task, "kws_i2s", 4096, nullptr, 5, nullptr, 0) != pdPASS) {
    *error = "could not start the I2S reader task";
    return false;
  }
  return true;
}

const char* audio_provider_diagnose(kws_mic_status status) {
  switch (status) {
    case KWS_MIC_SILENT:
    case KWS_MIC_STUCK:
      return "I2S slot silent or stuck for 1 s: the microphone drives the other slot; flip "
             "-DKWS_I2S_RIGHT_SLOT in platformio.ini (0 <-> 1; its L/R pin picks the slot)";
    case KWS_MIC_FLOATING:
      return "I2S data reads -1/0 for 1 s: the SD line floats; check SD -> KWS_I2S_SD_PIN, VDD "
             "and GND, then -DKWS_I2S_RIGHT_SLOT";
    case KWS_MIC_FULL_SCALE:
      return "I2S data at full scale for 1 s: the SD line floats or WS/SCK are swapped; check the "
             "wiring (KWS_I2S_*_PIN), or raise KWS_I2S_SHIFT";
    default:
      return nullptr;
  }
}

#endif  // KWS_BOARD_ESP32DEV
