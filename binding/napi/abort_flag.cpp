#include "abort_flag.h"

#include "addon_data.h"
#include "errors.h"

namespace tea {

Napi::Function AbortFlag::Define(Napi::Env env) {
  return DefineClass(env, "AbortFlag",
                     {InstanceMethod<&AbortFlag::Abort>("abort"), InstanceAccessor<&AbortFlag::Aborted>("aborted")});
}

AbortFlag::AbortFlag(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AbortFlag>(info) {}

void AbortFlag::Abort(const Napi::CallbackInfo&) { flag_->store(true); }

Napi::Value AbortFlag::Aborted(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

SharedFlag AbortFlag::From(const Napi::Value& value) {
  if (value.IsUndefined() || value.IsNull()) return std::make_shared<std::atomic<bool>>(false);
  Napi::Env env = value.Env();
  if (value.IsObject() && value.As<Napi::Object>().InstanceOf(AddonData::Of(env)->abortFlagClass.Value())) {
    return AbortFlag::Unwrap(value.As<Napi::Object>())->flag();
  }
  throw TeaError("ERR_INVALID_ARGUMENT", "abort handle must be an AbortFlag");
}

}  // namespace tea
