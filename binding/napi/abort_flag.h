// AbortFlag: a cancellation flag shared between JS (which sets it) and a worker (which polls it).
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

namespace tea {

using SharedFlag = std::shared_ptr<std::atomic<bool>>;

class AbortFlag : public Napi::ObjectWrap<AbortFlag> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AbortFlag(const Napi::CallbackInfo& info);

  // The flag outlives this wrapper while a worker holds it.
  SharedFlag flag() const { return flag_; }

  // Accepts undefined/null (no cancellation) or an AbortFlag; anything else is ERR_INVALID_ARGUMENT.
  static SharedFlag From(const Napi::Value& value);

 private:
  // abort(): void
  void Abort(const Napi::CallbackInfo& info);
  // get aborted: boolean
  Napi::Value Aborted(const Napi::CallbackInfo& info);

  SharedFlag flag_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace tea
