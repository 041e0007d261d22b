// ContextCreateWorker: allocates a llama_context (KV cache, compute buffers) for a Model.
#pragma once

#include <napi.h>

#include "handles.h"
#include "options.h"
#include "promise_worker.h"

namespace tea {

class ContextCreateWorker : public PromiseWorker {
 public:
  // Main thread. `model` is the JS Model object; the new Context keeps it alive.
  ContextCreateWorker(Napi::Env env, ModelPtr model, Napi::Object modelObject, ContextOptions options);

 protected:
  // Worker thread: llama_init_from_model.
  void Run() override;
  // Main thread.
  Napi::Value Result(Napi::Env env) override;

 private:
  ModelPtr model_;
  Napi::ObjectReference modelObject_;
  ContextOptions options_;
  ContextPtr context_;
};

}  // namespace tea
