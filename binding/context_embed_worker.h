// ContextEmbedWorker: one pooled embedding vector per input text, optionally L2-normalised.
#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "abort_flag.h"
#include "env_watch.h"
#include "handles.h"
#include "promise_worker.h"

namespace tea {

class ContextEmbedWorker : public PromiseWorker {
 public:
  // Main thread; `context` was marked busy by Context::Acquire.
  ContextEmbedWorker(Napi::Env env, ContextPtr context, std::vector<std::string> texts, bool normalize, SharedFlag abort);

 protected:
  // Worker thread: hands Embed() to the context's compute thread and waits.
  void Run() override;
  // Compute thread: decode (or encode) each text as sequence 0 and read its pooled embedding.
  void Embed();
  // Main thread: Float32Array per text.
  Napi::Value Result(Napi::Env env) override;
  // Main thread: the context is free for the next operation.
  void Settled() override;

 private:
  ContextPtr context_;
  std::vector<std::string> texts_;
  bool normalize_;
  SharedFlag abort_;
  std::optional<EnvWatch> watch_;
  std::vector<std::vector<float>> vectors_;
};

}  // namespace tea
