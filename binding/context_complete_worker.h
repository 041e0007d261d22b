// ContextCompleteWorker: prompt in, text out. The whole token loop (decode, sample, stop strings, UTF-8
// boundaries) runs in C++ on a pool thread; text chunks reach JS through a thread-safe function.
#pragma once

#include <napi.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "abort_flag.h"
#include "env_watch.h"
#include "handles.h"
#include "options.h"

namespace tea {

struct CompletionResult {
  std::string text;
  int32_t promptTokens = 0;
  int32_t reusedPromptTokens = 0;
  int32_t completionTokens = 0;
  std::string finishReason = "stop";  // stop | length | abort
  bool contextFull = false;
  double promptMs = 0;
  double generationMs = 0;
  double firstTokenMs = 0;
};

class ContextCompleteWorker : public Napi::AsyncWorker {
 public:
  // Main thread. `onChunk` is a function or undefined/null (no streaming).
  ContextCompleteWorker(Napi::Env env, ContextPtr context, std::string prompt, CompleteOptions options, Napi::Value onChunk,
                        SharedFlag abort);

  Napi::Promise Promise() const;

 private:
  // Main-thread state settled by whichever finishes last: the worker (OnOK/OnError) or the chunk queue's
  // finalizer. Waiting for both guarantees every chunk reaches JS before the promise resolves.
  struct Settlement {
    explicit Settlement(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise::Deferred deferred;
    ContextPtr context;
    CompletionResult result;
    bool failed = false;
    std::string code;
    std::string message;
    int pending = 1;
  };
  // Main thread: counts one of the two down; the last one releases the context and settles the promise. Never throws.
  static void SettleOne(Napi::Env env, const std::shared_ptr<Settlement>& settlement);
  static void Settle(Napi::Env env, const Settlement& settlement);

  // Worker thread: hands Generate() to the context's compute thread and waits.
  void Execute() override;
  // Compute thread: the token loop.
  void Generate();
  // Compute thread: adds text to the result and passes it on to the chunk callback, merged with what follows when
  // less than kChunkInterval passed since the last call; `last` sends whatever is left.
  void Emit(const std::string& chunk, bool last);
  // Main thread.
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

  ContextPtr context_;
  std::string prompt_;
  CompleteOptions options_;
  SharedFlag abort_;
  std::optional<Napi::ThreadSafeFunction> chunks_;
  static constexpr std::chrono::microseconds kChunkInterval{1000};
  std::string unsent_;
  std::chrono::steady_clock::time_point lastSent_{};
  std::optional<EnvWatch> watch_;
  std::shared_ptr<Settlement> settlement_;
  CompletionResult result_;
  std::string code_ = "ERR_INTERNAL";
};

}  // namespace tea
