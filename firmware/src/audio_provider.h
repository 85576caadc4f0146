// Audio provider: the board's microphone as a 16 kHz mono int16 stream into a kws_audio_ring.
// One implementation per board (audio_provider_nano33ble.cpp: PDM; audio_provider_esp32.cpp:
// I2S); platformio.ini compiles the right one. Samples arrive from an interrupt (PDM) or a
// reader task (I2S); when the main loop falls behind, the ring counts overruns instead of
// overwriting queued audio.
#ifndef KWS_AUDIO_PROVIDER_H_
#define KWS_AUDIO_PROVIDER_H_

#include "kws_audio_ring.h"

#include "kws_listener.h"

// Start capturing into ring. Returns false and sets *error to a one-line reason on failure.
bool audio_provider_start(kws_audio_ring* ring, const char** error);

// What a bad microphone status (kws_listener's check over a second of samples) means on this
// board and how to fix it, one line; nullptr for KWS_MIC_OK / KWS_MIC_UNKNOWN.
const char* audio_provider_diagnose(kws_mic_status status);

#endif  // KWS_AUDIO_PROVIDER_H_
