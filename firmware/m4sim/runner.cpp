// m4sim runner: one TFLite-Micro inference on QEMU mps2-an386 (Cortex-M4F), instructions per
// operator, printed over semihosting. See README.md.
//
// The model comes from the semihosting command line (a .tflite path on the host) or, built
// with -DM4SIM_MODEL_ARRAY, from the firmware's exported C array (firmware/src/model). The op
// resolver is filled exactly as firmware/src/model_runner.cpp fills it: one
// MicroMutableOpResolver method per X(...) entry of M4SIM_FOR_EACH_OP (generated, or the
// export's KWS_MODEL_FOR_EACH_OP), so the same kernels (CMSIS-NN where the library has them)
// run as on the board.
#include <stdint.h>
#include <string.h>

#include <new>

#include "semihost.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "timer.h"

#if defined(M4SIM_MODEL_ARRAY)
#include "model/kws_model_data.h"
#define M4SIM_FOR_EACH_OP KWS_MODEL_FOR_EACH_OP
#else
// M4SIM_FOR_EACH_OP(X) comes from the generated ops header (-include, see Makefile).
#endif

extern "C" void m4sim_frontend_bench(void);
extern "C" void m4sim_print(const char* s);
extern "C" void m4sim_print_u(uint64_t v);

namespace {

constexpr size_t kArenaBytes = 1024 * 1024;
constexpr size_t kModelMax = 1536 * 1024;
constexpr int kMaxEvents = 512;
alignas(16) uint8_t g_arena[kArenaBytes];
#if !defined(M4SIM_MODEL_ARRAY)
alignas(16) uint8_t g_model[kModelMax];
#endif

#define M4SIM_COUNT_OP(m) +1
constexpr int kOpCount = 0 M4SIM_FOR_EACH_OP(M4SIM_COUNT_OP);
#undef M4SIM_COUNT_OP
using OpResolver = tflite::MicroMutableOpResolver<kOpCount>;

// Records the timer at each operator's begin and end. The span includes the profiler's own
// call overhead (a few dozen instructions), which the runner measures and prints separately.
class TickProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    if (count_ >= kMaxEvents) return kMaxEvents;
    tags_[count_] = tag;
    begin_[count_] = m4sim_ticks();
    return count_++;
  }
  void EndEvent(uint32_t handle) override {
    uint32_t now = m4sim_ticks();
    if (handle < kMaxEvents) end_[handle] = now;
  }
  void Reset() { count_ = 0; }
  int count() const { return count_; }
  const char* tag(int i) const { return tags_[i]; }
  uint32_t ticks(int i) const { return end_[i] - begin_[i]; }

 private:
  int count_ = 0;
  const char* tags_[kMaxEvents];
  uint32_t begin_[kMaxEvents];
  uint32_t end_[kMaxEvents];
};

TickProfiler g_profiler;

// A loop of exactly 2 instructions per iteration (subs + bne), to check the tick factor.
__attribute__((noinline)) void calibration_loop(uint32_t n) {
  __asm volatile(
      "1: subs %0, %0, #1\n"
      "   bne 1b\n"
      : "+r"(n)
      :
      : "cc");
}

void kv(const char* key, uint64_t value) {
  m4sim_print(" ");
  m4sim_print(key);
  m4sim_print("=");
  m4sim_print_u(value);
}

int fail(const char* what) {
  m4sim_print("M4SIM error ");
  m4sim_print(what);
  m4sim_print("\n");
  return 1;
}

}  // namespace

int main() {
  m4sim_timer_start();
  {
    const uint32_t n = 500000;
    uint32_t t0 = m4sim_ticks();
    calibration_loop(n);
    uint32_t t1 = m4sim_ticks();
    m4sim_print("M4SIM calibration");
    kv("loop_instructions", 2ull * n);
    kv("measured_instructions", m4sim_instructions(t1 - t0));
    m4sim_print("\n");
  }

#if defined(M4SIM_MODEL_ARRAY)
  const uint8_t* model_bytes = kws_model_data;
  long model_len = kws_model_data_len;
#else
  static char cmdline[512];
  if (sh_cmdline(cmdline, sizeof(cmdline)) != 0 || cmdline[0] == 0)
    return fail("no model path on the semihosting command line");
  char* path = cmdline;
  // QEMU passes "arg0 arg1 ..."; take the last word (the model path).
  for (char* p = cmdline; *p; ++p)
    if (*p == ' ' && p[1]) path = p + 1;
  long model_len = sh_read_file(path, g_model, sizeof(g_model));
  if (model_len <= 0) return fail("cannot read the model file");
  const uint8_t* model_bytes = g_model;
#endif
  m4sim_print("M4SIM model");
  kv("bytes", (uint64_t)model_len);
  m4sim_print("\n");

  const tflite::Model* model = tflite::GetModel(model_bytes);
  if (model->version() != TFLITE_SCHEMA_VERSION) return fail("schema version differs");
  alignas(OpResolver) static uint8_t resolver_storage[sizeof(OpResolver)];
  OpResolver* resolver = new (resolver_storage) OpResolver();
#define M4SIM_ADD_OP(method) \
  if (resolver->method() != kTfLiteOk) return fail("could not register op " #method);
  M4SIM_FOR_EACH_OP(M4SIM_ADD_OP)
#undef M4SIM_ADD_OP

  alignas(tflite::MicroInterpreter) static uint8_t interp_storage[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interp = new (interp_storage)
      tflite::MicroInterpreter(model, *resolver, g_arena, sizeof(g_arena), nullptr, &g_profiler);
  if (interp->AllocateTensors() != kTfLiteOk) return fail("AllocateTensors failed");
  TfLiteTensor* input = interp->input(0);
  m4sim_print("M4SIM arena");
  kv("used_bytes", interp->arena_used_bytes());
  m4sim_print("\n");

  // Deterministic pseudo-random input (LCG); kernel cost does not depend on the values.
  uint32_t seed = 12345;
  for (size_t i = 0; i < input->bytes; ++i) {
    seed = seed * 1664525u + 1013904223u;
    input->data.int8[i] = (int8_t)(seed >> 24);
  }

  // Profiler overhead: an empty Begin/End pair, as the interpreter makes it.
  uint32_t overhead_ticks;
  {
    uint32_t t0 = m4sim_ticks();
    for (int i = 0; i < 64; ++i) g_profiler.EndEvent(g_profiler.BeginEvent("x"));
    overhead_ticks = m4sim_ticks() - t0;
    g_profiler.Reset();
  }
  m4sim_print("M4SIM profiler");
  kv("pair_instructions_x64", m4sim_instructions(overhead_ticks));
  m4sim_print("\n");

  // Invoke twice: the first run may do one-time work; the second is the steady state.
  for (int run = 0; run < 2; ++run) {
    g_profiler.Reset();
    uint32_t t0 = m4sim_ticks();
    if (interp->Invoke() != kTfLiteOk) return fail("Invoke failed");
    uint32_t t1 = m4sim_ticks();
    m4sim_print("M4SIM invoke");
    kv("run", run);
    kv("instructions", m4sim_instructions(t1 - t0));
    kv("ops", g_profiler.count());
    m4sim_print("\n");
  }
  for (int i = 0; i < g_profiler.count(); ++i) {
    m4sim_print("M4SIM op");
    kv("index", i);
    m4sim_print(" name=");
    m4sim_print(g_profiler.tag(i));
    kv("instructions", m4sim_instructions(g_profiler.ticks(i)));
    m4sim_print("\n");
  }
  m4sim_frontend_bench();
  m4sim_print("M4SIM done\n");
  return 0;
}
