// Lora: JS wrapper over one loaded LoRA adapter (core/lora.h). Created by Model.loadLora (LoraLoadWorker), never by
// `new` from JS. The adapter shares ownership with its model: requests and contexts that use it keep it (and the
// model) alive after dispose(); it is freed when the last of them lets go.
//
// Threads: every method runs on the JS thread that loaded it; LoraLoadWorker::Run on a libuv pool thread.
#pragma once

#include <napi.h>

#include <string>

#include "handles.h"
#include "lora.h"
#include "promise_worker.h"

namespace tea {

class Lora : public Napi::ObjectWrap<Lora> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Lora(const Napi::CallbackInfo& info);

  // Main thread: the adapter of a Lora object; ERR_INVALID_ARGUMENT for anything else, ERR_DISPOSED once disposed.
  static LoraPtr From(const Napi::Value& value, const char* name);

 private:
  friend class LoraLoadWorker;
  // info(): { alpha: number, metadata: Record<string, string> }
  Napi::Value Info(const Napi::CallbackInfo& info);
  // dispose(): void  (idempotent: drops this wrapper's share)
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // get disposed: boolean
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  LoraPtr adapter_;
};

// Loads an adapter file for a model on a pool thread; resolves with a Lora.
class LoraLoadWorker : public PromiseWorker {
 public:
  // Main thread. `model` stays alive while the load runs.
  LoraLoadWorker(Napi::Env env, ModelPtr model, std::string path);

 protected:
  // Worker thread.
  void Run() override;
  // Main thread.
  Napi::Value Result(Napi::Env env) override;
  // Main thread.
  void Settled() override { model_.reset(); }

 private:
  ModelPtr model_;
  std::string path_;
  LoraPtr adapter_;
};

// Main thread: generate()'s `lora` option, [{ adapter: Lora, scale: number }], canonical. Every adapter must have
// been loaded for `model` (one of another model, even of the same architecture, would index the wrong tensors).
LoraConfig ParseLoraConfig(const Napi::Value& value, const llama_model* model);

}  // namespace tea
