// Model runner: the exported model (src/model/kws_model_data.*) in a TensorFlow Lite Micro
// interpreter with a static arena of KWS_MODEL_ARENA_BYTES and an op resolver registering
// exactly the operators listed by KWS_MODEL_FOR_EACH_OP.
#ifndef KWS_MODEL_RUNNER_H_
#define KWS_MODEL_RUNNER_H_

#include <stddef.h>
#include <stdint.h>

struct ModelRunnerInfo {
  size_t model_bytes;  // flatbuffer size
  size_t arena_bytes;  // static arena
  size_t arena_used;   // what the interpreter allocated in it
  float input_scale;   // quantization read from the model's tensors
  int32_t input_zero_point;
  float output_scale;
  int32_t output_zero_point;
};

// Build the interpreter and allocate tensors. Returns false and sets *error to a one-line reason
// (wrong schema, missing operator, arena too small, unexpected tensor shapes) on failure.
bool model_runner_init(ModelRunnerInfo* info, const char** error);

// The int8 input tensor (KWS_MODEL_INPUT_FRAMES * KWS_MODEL_INPUT_CHANNELS values), so the
// feature window can be written straight into it.
int8_t* model_runner_input();

// kws_model_invoke_fn: run the model on input (copied unless it is the input tensor) and copy
// the KWS_MODEL_NUM_LABELS int8 outputs. Returns 0 on success.
int model_runner_invoke(void* ctx, const int8_t* input, int8_t* output);

#endif  // KWS_MODEL_RUNNER_H_
