// ContextCreateWorker: allocates a llama_context (KV cache, compute buffers) for a Model on a pool thread; the
// Context made from it on the main thread starts the scheduler thread that runs it from then on.
#pragma once

#include <napi.h>

#include "handles.h"
#include "options.h"
#include "promise_worker.h"

namespace tea {

class ContextCreateWorker : public PromiseWorker {
 public:
  // Main thread. `modelObject` is the JS Model object (the new Context keeps it alive); `onEvents` receives the
  // context's events; `draft`, if any, the draft model of its speculative decoding.
  ContextCreateWorker(Napi::Env env, ModelPtr model, Napi::Object modelObject, ContextOptions options, Napi::Function onEvents,
                      ModelPtr draft = nullptr);
  ~ContextCreateWorker() override;

 protected:
  // Worker thread: llama_init_from_model (and the draft model's context and speculation, with speculative decoding).
  void Run() override;
  // Main thread.
  Napi::Value Result(Napi::Env env) override;

 private:
  ModelPtr model_;
  Napi::ObjectReference modelObject_;
  Napi::FunctionReference onEvents_;
  ContextOptions options_;
  llama_context* ctx_ = nullptr;
  ModelPtr draft_;
  std::unique_ptr<Speculation> speculation_;
};

}  // namespace tea
