// tensorflow/lite/micro/micro_time.h for the harness (the library's micro_time.cpp needs the
// Arduino core's micros()): the CMSDK timer, in instructions under -icount shift=0.
#include "tensorflow/lite/micro/micro_time.h"
#include "timer.h"

namespace tflite {
uint32_t ticks_per_second() { return 1000000000u / M4SIM_NS_PER_TICK; }
uint32_t GetCurrentTimeTicks() { return m4sim_ticks(); }
}  // namespace tflite
