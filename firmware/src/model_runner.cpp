// Model runner: see model_runner.h. The only file that touches the TensorFlow Lite Micro API
// (the Chirale_TensorFLowLite library pinned in platformio.ini, TFLM of mid-2024: interpreter
// constructor without an ErrorReporter, MicroMutableOpResolver<N>::AddXxx() methods,
// arena_used_bytes()).
#include "model_runner.h"

#include <string.h>

#include <new>

#if defined(ARDUINO)
// The library's umbrella header; including it makes the Arduino build compile the library.
#include <Chirale_TensorFlowLite.h>
#endif

#include "model/kws_model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

static_assert(KWS_MODEL_ARENA_BYTES % 16 == 0, "the arena size must be a multiple of 16");

namespace {

using OpResolver = tflite::MicroMutableOpResolver<KWS_MODEL_OP_COUNT>;

alignas(16) uint8_t g_arena[KWS_MODEL_ARENA_BYTES];
// Placement storage: no heap, no static constructors/destructors to order.
alignas(OpResolver) uint8_t g_resolver_storage[sizeof(OpResolver)];
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;
TfLiteTensor* g_input = nullptr;
TfLiteTensor* g_output = nullptr;

}  // namespace

bool model_runner_init(ModelRunnerInfo* info, const char** error) {
  const tflite::Model* model = tflite::GetModel(kws_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    *error = "model schema version differs from the TFLite Micro library's; re-export the model";
    return false;
  }
  OpResolver* resolver = new (g_resolver_storage) OpResolver();
#define KWS_ADD_OP(method)                     \
  if (resolver->method() != kTfLiteOk) {       \
    *error = "could not register op " #method; \
    return false;                              \
  }
  KWS_MODEL_FOR_EACH_OP(KWS_ADD_OP)
#undef KWS_ADD_OP

  g_interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, *resolver, g_arena, sizeof(g_arena));
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    *error =
        "AllocateTensors failed: arena too small or an operator is missing (see the line above)";
    return false;
  }
  g_input = g_interpreter->input(0);
  g_output = g_interpreter->output(0);
  if (g_input == nullptr || g_input->type != kTfLiteInt8 ||
      g_input->bytes != static_cast<size_t>(KWS_MODEL_INPUT_FRAMES * KWS_MODEL_INPUT_CHANNELS)) {
    *error = "model input is not int8 49x40; re-export a kwstool model";
    return false;
  }
  if (g_output == nullptr || g_output->type != kTfLiteInt8 ||
      g_output->bytes != static_cast<size_t>(KWS_MODEL_NUM_LABELS)) {
    *error = "model output is not int8 with one value per label; re-export a kwstool model";
    return false;
  }
  info->model_bytes = kws_model_data_len;
  info->arena_bytes = sizeof(g_arena);
  info->arena_used = g_interpreter->arena_used_bytes();
  info->input_scale = g_input->params.scale;
  info->input_zero_point = g_input->params.zero_point;
  info->output_scale = g_output->params.scale;
  info->output_zero_point = g_output->params.zero_point;
  return true;
}

int8_t* model_runner_input() { return g_input != nullptr ? g_input->data.int8 : nullptr; }

int model_runner_invoke(void* ctx, const int8_t* input, int8_t* output) {
  (void)ctx;
  if (g_interpreter == nullptr) return -1;
  if (input != g_input->data.int8) memcpy(g_input->data.int8, input, g_input->bytes);
  if (g_interpreter->Invoke() != kTfLiteOk) return -1;
  memcpy(output, g_output->data.int8, KWS_MODEL_NUM_LABELS);
  return 0;
}
