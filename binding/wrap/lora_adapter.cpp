#include "lora_adapter.h"

#include <cmath>

#include "addon_data.h"
#include "errors.h"
#include "text_utils.h"

namespace tea {

Napi::Function Lora::Define(Napi::Env env) {
  return DefineClass(env, "Lora",
                     {
                         InstanceMethod<&Lora::Info>("info"),
                         InstanceMethod<&Lora::Dispose>("dispose"),
                         InstanceAccessor<&Lora::Disposed>("disposed"),
                     });
}

Lora::Lora(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Lora>(info) {}

LoraPtr Lora::From(const Napi::Value& value, const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(AddonData::Of(env)->loraClass.Value())) {
    throw TeaError("ERR_INVALID_ARGUMENT", std::string(name) + " must be a LoRA adapter from loadLora()");
  }
  Lora* lora = Lora::Unwrap(value.As<Napi::Object>());
  if (!lora->adapter_) throw TeaError("ERR_DISPOSED", std::string(name) + ": the LoRA adapter has been disposed");
  return lora->adapter_;
}

Napi::Value Lora::Info(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!adapter_) throw TeaError("ERR_DISPOSED", "the LoRA adapter has been disposed");
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("alpha", adapter_->alpha());
    Napi::Object metadata = Napi::Object::New(env);
    const llama_adapter_lora* a = adapter_->get();
    const int32_t count = llama_adapter_meta_count(a);
    for (int32_t i = 0; i < count; ++i) {
      metadata.Set(ReadString([&](char* buf, size_t size) { return llama_adapter_meta_key_by_index(a, i, buf, size); }),
                   ReadString([&](char* buf, size_t size) { return llama_adapter_meta_val_str_by_index(a, i, buf, size); }));
    }
    out.Set("metadata", metadata);
    return out;
  });
}

Napi::Value Lora::Dispose(const Napi::CallbackInfo& info) {
  adapter_.reset();
  return info.Env().Undefined();
}

Napi::Value Lora::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !adapter_); }

LoraLoadWorker::LoraLoadWorker(Napi::Env env, ModelPtr model, std::string path)
    : PromiseWorker(env, "tea-llama:LoraLoad"), model_(std::move(model)), path_(std::move(path)) {}

void LoraLoadWorker::Run() {
  ModelHandle* handle = model_.get();
  adapter_ = LoraAdapter::Load(handle->model, model_, &handle->adapters, path_);
}

Napi::Value LoraLoadWorker::Result(Napi::Env env) {
  Napi::Object object = AddonData::Of(env)->loraClass.New({});
  Lora::Unwrap(object)->adapter_ = std::move(adapter_);
  return object;
}

LoraConfig ParseLoraConfig(const Napi::Value& value, const llama_model* model) {
  LoraConfig config;
  if (value.IsUndefined() || value.IsNull()) return config;
  if (!value.IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "lora must be an array of { adapter, scale }");
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsObject()) throw TeaError("ERR_INVALID_ARGUMENT", "lora[" + std::to_string(i) + "] must be { adapter, scale }");
    Napi::Object entry = item.As<Napi::Object>();
    LoraScale s;
    s.adapter = Lora::From(entry.Get("adapter"), "lora[i].adapter");
    if (s.adapter->model() != model) {
      throw TeaError("ERR_INVALID_ARGUMENT", "lora[" + std::to_string(i) + "].adapter was loaded for another model");
    }
    Napi::Value scale = entry.Get("scale");
    if (!scale.IsNumber() || !std::isfinite(scale.As<Napi::Number>().DoubleValue())) {
      throw TeaError("ERR_INVALID_ARGUMENT", "lora[" + std::to_string(i) + "].scale must be a finite number");
    }
    s.scale = static_cast<float>(scale.As<Napi::Number>().DoubleValue());
    config.push_back(std::move(s));
  }
  return Canonical(std::move(config));
}

}  // namespace tea
