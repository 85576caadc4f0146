// Responder: what the user sees of a detection -- one serial line and the LED.
//
//   DETECTED yes score=0.93 t=12840ms
//
// score is the averaged probability of the word over the recognizer window (0.00-1.00), t the
// audio time since boot (end of the window that triggered). The LED stays on KWS_LED_ON_MS.
#ifndef KWS_RESPONDER_H_
#define KWS_RESPONDER_H_

#include <stdint.h>

void responder_init();
void responder_detection(const char* label, uint8_t score, uint32_t time_ms, uint32_t now_ms);
// Call from the loop: turns the LED off when its time is up.
void responder_poll(uint32_t now_ms);

#endif  // KWS_RESPONDER_H_
