// Board selection and the build-flag settings of the firmware, with their defaults.
// platformio.ini sets KWS_BOARD_* and may override any of the values below.
#ifndef KWS_BOARD_CONFIG_H_
#define KWS_BOARD_CONFIG_H_

#if defined(KWS_BOARD_NANO33BLE)
#define KWS_BOARD_NAME "nano33ble"
#ifndef KWS_LED_PIN
#define KWS_LED_PIN LED_BUILTIN
#endif
#ifndef KWS_PDM_GAIN
#define KWS_PDM_GAIN 20
#endif
// bytes per PDM callback: 512 samples = 32 ms
#ifndef KWS_PDM_BUFFER_BYTES
#define KWS_PDM_BUFFER_BYTES 1024
#endif

#elif defined(KWS_BOARD_ESP32DEV)
#define KWS_BOARD_NAME "esp32dev"
#ifndef KWS_LED_PIN
#define KWS_LED_PIN 2
#endif
#ifndef KWS_I2S_SCK_PIN
#define KWS_I2S_SCK_PIN 26
#endif
#ifndef KWS_I2S_WS_PIN
#define KWS_I2S_WS_PIN 25
#endif
#ifndef KWS_I2S_SD_PIN
#define KWS_I2S_SD_PIN 33
#endif
#ifndef KWS_I2S_RIGHT_SLOT
#define KWS_I2S_RIGHT_SLOT 0
#endif
#ifndef KWS_I2S_SHIFT
#define KWS_I2S_SHIFT 14
#endif
// samples per I2S read: 256 = 16 ms
#ifndef KWS_I2S_READ_SAMPLES
#define KWS_I2S_READ_SAMPLES 256
#endif

#else
#error "Build with -DKWS_BOARD_NANO33BLE or -DKWS_BOARD_ESP32DEV (platformio.ini does)."
#endif

#ifndef KWS_SERIAL_BAUD
#define KWS_SERIAL_BAUD 115200
#endif
// audio queued between the microphone and the main loop: 8192 samples = 512 ms (power of two)
#ifndef KWS_AUDIO_RING_SAMPLES
#define KWS_AUDIO_RING_SAMPLES 8192
#endif
// period of the STATS line in live mode
#ifndef KWS_STATS_PERIOD_MS
#define KWS_STATS_PERIOD_MS 5000
#endif
// LED on-time after a detection
#ifndef KWS_LED_ON_MS
#define KWS_LED_ON_MS 500
#endif
// the serial test mode ends after this long without a frame from the host
#ifndef KWS_TEST_MODE_IDLE_MS
#define KWS_TEST_MODE_IDLE_MS 10000
#endif

#endif  // KWS_BOARD_CONFIG_H_
