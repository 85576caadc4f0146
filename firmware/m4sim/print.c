/* Minimal output over semihosting (no printf, no heap). */
#include <stdint.h>

#include "semihost.h"

void m4sim_print(const char *s) { sh_write0(s); }

void m4sim_print_u(uint64_t v) {
  char buf[24];
  int i = sizeof(buf) - 1;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v && i > 0);
  sh_write0(buf + i);
}

/* TFLM's log sink (tensorflow/lite/micro/debug_log.h); the Arduino library defines it in
 * system_setup.cpp, which the harness does not build (it needs Arduino.h). */
void DebugLog(const char *s) { sh_write0(s); }
