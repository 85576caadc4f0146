// Responder: see responder.h.
#include "responder.h"

#include <Arduino.h>
#include <stdio.h>

#include "board_config.h"

namespace {
bool g_led_on = false;
uint32_t g_led_since_ms = 0;
}  // namespace

void responder_init() {
  pinMode(KWS_LED_PIN, OUTPUT);
  digitalWrite(KWS_LED_PIN, LOW);
}

void responder_detection(const char* label, uint8_t score, uint32_t time_ms, uint32_t now_ms) {
  const unsigned hundredths = (score * 100u + 127u) / 255u;  // 0..100, no float printf needed
  char line[96];
  snprintf(line, sizeof(line), "DETECTED %s score=%u.%02u t=%lums", label, hundredths / 100u,
           hundredths % 100u, static_cast<unsigned long>(time_ms));
  Serial.println(line);
  digitalWrite(KWS_LED_PIN, HIGH);
  g_led_on = true;
  g_led_since_ms = now_ms;
}

void responder_poll(uint32_t now_ms) {
  if (g_led_on && now_ms - g_led_since_ms >= KWS_LED_ON_MS) {
    digitalWrite(KWS_LED_PIN, LOW);
    g_led_on = false;
  }
}
