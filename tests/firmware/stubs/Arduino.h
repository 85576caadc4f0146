// A minimal stand-in for <Arduino.h>, only for compiling firmware/src/main.cpp and responder.cpp
// on the host in CI (no board toolchain there). It declares the few Arduino calls those files
// use, with the real signatures (Print::write/print/println, Stream::available/read, millis,
// micros, pinMode, digitalWrite; HardwareSerial::setRxBufferSize on the ESP32). Never linked.
#ifndef KWS_TEST_STUB_ARDUINO_H_
#define KWS_TEST_STUB_ARDUINO_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HIGH 0x1
#define LOW 0x0
#define OUTPUT 0x1
#define LED_BUILTIN 13

void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
unsigned long millis(void);
unsigned long micros(void);

class StubSerial {
 public:
  void begin(unsigned long baud);
  explicit operator bool();
  int available(void);
  int read(void);
  size_t write(const uint8_t* buffer, size_t size);
  size_t print(const char* text);
  size_t println(const char* text);
  size_t setRxBufferSize(size_t size);
};
extern StubSerial Serial;

#endif  // KWS_TEST_STUB_ARDUINO_H_
