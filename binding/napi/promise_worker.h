// Base for every slow operation: runs Run() on a libuv pool thread and settles a Promise on the main thread.
#pragma once

#include <napi.h>

#include <string>

#include "errors.h"

namespace tea {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* resourceName)
      : Napi::AsyncWorker(env, resourceName), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  // Worker thread. Throw TeaError to reject with a code.
  virtual void Run() = 0;
  // Main thread, on success: builds the resolved value.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // Main thread, after success or failure: release what the operation held.
  virtual void Settled() {}

 private:
  // Worker thread: no exception may leave Execute.
  void Execute() final {
    try {
      Run();
    } catch (const TeaError& e) {
      Fail(e.code(), e.what());
    } catch (const std::bad_alloc&) {
      Fail("ERR_OUT_OF_MEMORY", "out of memory");
    } catch (const std::exception& e) {
      Fail(CodeOf(e), e.what());
    } catch (...) {
      Fail("ERR_INTERNAL", "unknown native error");
    }
  }

  // Not SetError: node-addon-api would build the error object for OnError outside any handler of ours, and during
  // worker.terminate() that throws a Napi::Error it cannot rethrow into JS (std::terminate, seen in the worker test).
  // Every completion goes through OnOK, which settles the promise under Unthrowing.
  void Fail(const std::string& code, const std::string& message) {
    code_ = code;
    message_ = message;
    failed_ = true;
  }

  // Main thread.
  void OnOK() final {
    Napi::Env env = Env();
    Settled();
    Unthrowing([&] {
      if (failed_) {
        deferred_.Reject(MakeError(env, code_, message_).Value());
        return;
      }
      try {
        deferred_.Resolve(Result(env));
      } catch (const Napi::Error& e) {
        deferred_.Reject(e.Value());
      } catch (const TeaError& e) {
        deferred_.Reject(MakeError(env, e.code(), e.what()).Value());
      } catch (const std::exception& e) {
        deferred_.Reject(MakeError(env, "ERR_INTERNAL", e.what()).Value());
      }
    });
  }

  // A worker that finishes while its worker thread's environment is torn down (worker.terminate() during a load or
  // an embedding) completes when no JavaScript can run: settling the promise fails with a Napi::Error, which
  // node-addon-api cannot rethrow into JS either and turns into std::terminate. Nobody is left to receive it.
  template <typename Fn>
  static void Unthrowing(Fn&& fn) {
    try {
      fn();
    } catch (const Napi::Error&) {
    }
  }

  Napi::Promise::Deferred deferred_;
  bool failed_ = false;  // set on the worker thread, read on the main thread after the work completes
  std::string code_ = "ERR_INTERNAL";
  std::string message_;
};

}  // namespace tea
