// Argument parsing for bound methods (main thread). The TypeScript layer validates first; these checks keep the
// native layer safe on its own: a bad value is ERR_INVALID_ARGUMENT, never undefined behaviour.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace tea {

std::string RequireString(const Napi::Value& value, const char* name);
int32_t RequireInt(const Napi::Value& value, const char* name, int64_t min, int64_t max);
std::vector<llama_token> RequireTokens(const Napi::Value& value, int32_t vocabSize);

struct ModelOptions {
  int32_t gpuLayers = 0;
  bool vocabOnly = false;
  bool useMmap = true;

  static ModelOptions Parse(const Napi::Value& value);
};

struct ContextOptions {
  uint32_t contextSize = 0;  // 0: the model's trained length
  uint32_t batchSize = 2048;
  uint32_t microBatchSize = 512;
  int32_t threads = 4;
  int32_t threadsBatch = 4;
  bool embeddings = false;
  int32_t pooling = -1;  // llama_pooling_type; -1: the model's own
  int32_t flashAttention = LLAMA_FLASH_ATTN_TYPE_AUTO;  // llama_flash_attn_type: -1 auto, 0 off, 1 on

  static ContextOptions Parse(const Napi::Value& value);
};

struct CompleteOptions {
  int32_t maxTokens = 256;  // -1: until the context is full
  float temperature = 0.8f;
  int32_t topK = 40;
  float topP = 0.95f;
  float minP = 0.05f;
  float repeatPenalty = 1.0f;
  int32_t repeatLastN = 64;
  float frequencyPenalty = 0.0f;
  float presencePenalty = 0.0f;
  uint32_t seed = LLAMA_DEFAULT_SEED;
  std::vector<std::string> stop;

  static CompleteOptions Parse(const Napi::Value& value);
};

}  // namespace tea
