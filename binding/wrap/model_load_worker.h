// ModelLoadWorker: loads a GGUF file into a Model, reporting progress and honouring an AbortFlag.
#pragma once

#include <napi.h>

#include <optional>
#include <string>

#include "abort_flag.h"
#include "env_watch.h"
#include "handles.h"
#include "model.h"
#include "options.h"
#include "promise_worker.h"

namespace tea {

class ModelLoadWorker : public PromiseWorker {
 public:
  // Main thread. `onProgress` may be undefined; it receives a number in [0, 1].
  ModelLoadWorker(Napi::Env env, std::string path, ModelOptions options, Napi::Value onProgress, SharedFlag abort);
  ~ModelLoadWorker() override;

 protected:
  // Worker thread: llama_model_load_from_file, then the metadata read.
  void Run() override;
  // Main thread.
  Napi::Value Result(Napi::Env env) override;
  // Main thread: lets the progress function go.
  void Settled() override;

 private:
  // Worker thread (llama.cpp's loader calls it): forwards progress, returns false to cancel.
  static bool OnProgress(float progress, void* self);

  std::string path_;
  ModelOptions options_;
  SharedFlag abort_;
  std::optional<Napi::ThreadSafeFunction> progress_;
  std::optional<EnvWatch> watch_;
  int lastPercent_ = -1;
  ModelPtr handle_;
  ModelInfo info_;
};

}  // namespace tea
