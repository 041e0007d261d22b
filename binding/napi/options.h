// Argument parsing for bound methods (main thread). The TypeScript layer validates first; these checks keep the
// native layer safe on its own: a bad value is ERR_INVALID_ARGUMENT, never undefined behaviour.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"
#include "speculation.h"
#include "task.h"

namespace tea {

std::string RequireString(const Napi::Value& value, const char* name);
int32_t RequireInt(const Napi::Value& value, const char* name, int64_t min, int64_t max);
std::vector<llama_token> RequireTokens(const Napi::Value& value, int32_t vocabSize);

struct ModelOptions {
  int32_t gpuLayers = 0;
  bool vocabOnly = false;
  bool useMmap = true;
  std::vector<std::string> rpcServers;  // "host:port" of llama.cpp rpc-servers (the TS layer checked each is up)
  std::vector<float> tensorSplit;       // proportions per device, llama.cpp's tensor_split; empty: by free memory
  int32_t rpcTimeoutMs = 60000;         // send/recv timeout of each RPC connection once loaded; 0: none

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
  int32_t sequences = 4;     // parallel sequences (n_seq_max), one unified KV cache
  int32_t maxQueued = 1024;  // requests that may wait for a free sequence
  // Speculative decoding (draftMax, draftMin, draftPMin, ngram, ngramSize, ngramMax); used with a draft model or ngram.
  SpeculativeOptions speculative;

  static ContextOptions Parse(const Napi::Value& value);
};

// generate(prompt, options, stream): the task the scheduler runs (TS validates and defaults every field first).
GenerationTask ParseGenerationTask(const Napi::Value& prompt, const Napi::Value& options, bool stream);

}  // namespace tea
