// Owner of a llama_model. JS wrappers, running workers and schedulers share it through shared_ptr, so the model
// is freed only when none of them uses it any more ("never free what a running worker uses"): a context's
// scheduler keeps its model alive.
#pragma once

#include <memory>
#include <mutex>

#include "llama.h"

namespace tea {

struct ModelHandle {
  llama_model* model = nullptr;
  std::mutex adapters;  // llama.cpp's set of the model's LoRA adapters is not thread-safe (core/lora.h)

  explicit ModelHandle(llama_model* m) : model(m) {}
  ~ModelHandle() { llama_model_free(model); }
  ModelHandle(const ModelHandle&) = delete;
  ModelHandle& operator=(const ModelHandle&) = delete;

  const llama_vocab* vocab() const { return llama_model_get_vocab(model); }
};
using ModelPtr = std::shared_ptr<ModelHandle>;

}  // namespace tea
