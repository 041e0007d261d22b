// Owners of llama.cpp handles. JS wrappers and running workers share them through shared_ptr, so a handle is
// freed only when neither a wrapper nor a worker uses it any more ("never free what a running worker uses"),
// and a context's handle keeps its model's handle alive.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "compute_thread.h"
#include "env_watch.h"
#include "llama.h"

namespace tea {

struct ModelHandle {
  llama_model* model = nullptr;

  explicit ModelHandle(llama_model* m) : model(m) {}
  ~ModelHandle() { llama_model_free(model); }
  ModelHandle(const ModelHandle&) = delete;
  ModelHandle& operator=(const ModelHandle&) = delete;

  const llama_vocab* vocab() const { return llama_model_get_vocab(model); }
};
using ModelPtr = std::shared_ptr<ModelHandle>;

struct ContextHandle {
  ModelPtr model;  // the model must outlive the context
  llama_context* ctx = nullptr;
  bool embeddings = false;
  // The context size the caller asked for. llama.cpp may round n_ctx up (to a multiple of 256); the requested
  // size is the one enforced, so a prompt that would not fit what the user configured is still rejected.
  uint32_t limit = 0;

  // Set while an operation runs (one at a time per context). Checked from the main thread only.
  std::atomic<bool> busy{false};
  // The running operation's cancellation flag; read by llama.cpp's abort callback on compute threads.
  std::atomic<std::atomic<bool>*> activeAbort{nullptr};
  // The running operation's EnvWatch, pinged from the abort callback so a long decode notices worker.terminate().
  std::atomic<EnvWatch*> activeWatch{nullptr};
  // Set by dispose(): aborts the running operation.
  std::atomic<bool> disposing{false};

  // Tokens whose KV entries sequence 0 holds, for prompt-prefix reuse. Touched only by the running worker.
  std::vector<llama_token> cachedTokens;

  // Runs every decode of this context (see compute_thread.h). Declared last so it is joined first.
  ComputeThread compute;

  ContextHandle(ModelPtr m, llama_context* c, bool embd, uint32_t requested)
      : model(std::move(m)), ctx(c), embeddings(embd), limit(requested > 0 ? std::min(requested, llama_n_ctx(c)) : llama_n_ctx(c)) {
    llama_set_abort_callback(ctx, &ContextHandle::ShouldAbort, this);
  }
  ~ContextHandle() {
    compute.Run([this] { llama_free(ctx); });  // OpenMP team teardown on the thread that owns it
  }
  ContextHandle(const ContextHandle&) = delete;
  ContextHandle& operator=(const ContextHandle&) = delete;

  bool abortRequested() const {
    std::atomic<bool>* flag = activeAbort.load();
    return disposing.load() || (flag != nullptr && flag->load());
  }

 private:
  // Called by ggml's first compute thread (the context's compute thread) between graph nodes.
  // Pings only every 64th node: a clock read per node cost a tiny model a few percent of its token time.
  static bool ShouldAbort(void* self) {
    auto* handle = static_cast<ContextHandle*>(self);
    if ((++handle->abortChecks & 63) == 0) {
      if (EnvWatch* watch = handle->activeWatch.load()) watch->Ping();
    }
    return handle->abortRequested();
  }
  uint32_t abortChecks = 0;  // only ggml's first compute thread touches it
};
using ContextPtr = std::shared_ptr<ContextHandle>;

}  // namespace tea
