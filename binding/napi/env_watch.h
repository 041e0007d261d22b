// EnvWatch: lets a running operation notice that its JavaScript environment is going away.
//
// worker.terminate() tears the worker's environment down, but Node first waits for the thread-pool work that
// environment started (Environment::CleanupHandles), so a long generation, embedding or load held terminate() for
// as long as it ran (measured: 50 s for a generation to a full context, 155 s for 5,000 embeddings). While it waits,
// Node still dispatches thread-safe function calls, and they fail because no JavaScript can run any more. So the
// operation pings its environment now and then through a thread-safe function; a ping that cannot run its no-op
// callback (or is drained without an environment) aborts the operation, which then ends within one decode.
#pragma once

#include <napi.h>

#include <chrono>
#include <optional>

#include "abort_flag.h"

namespace tea {

class EnvWatch {
 public:
  // Main thread.
  EnvWatch(Napi::Env env, SharedFlag abort) : abort_(std::move(abort)) {
    Napi::Function noop = Napi::Function::New(env, [](const Napi::CallbackInfo&) {}, "tea-llama:envWatch");
    tsfn_ = Napi::ThreadSafeFunction::New(env, noop, "tea-llama:EnvWatch", 0, 1);
    tsfn_->Unref(env);  // never what keeps the event loop alive
  }

  EnvWatch(const EnvWatch&) = delete;
  EnvWatch& operator=(const EnvWatch&) = delete;

  // Any thread but one at a time (the operation's): at most one ping per interval.
  void Ping() {
    if (!tsfn_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    SharedFlag abort = abort_;
    tsfn_->NonBlockingCall([abort](Napi::Env env, Napi::Function noop) {
      if (env == nullptr) {
        abort->store(true);
        return;
      }
      try {
        noop.Call({});
      } catch (const Napi::Error&) {
        abort->store(true);  // the environment is being torn down
      }
    });
  }

  // The operation's thread, once, when it is done pinging.
  void Release() {
    if (tsfn_) tsfn_->Release();
    tsfn_.reset();
  }

 private:
  SharedFlag abort_;
  std::optional<Napi::ThreadSafeFunction> tsfn_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace tea
