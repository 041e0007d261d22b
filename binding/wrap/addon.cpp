// Module entry: per-environment class registry and the free functions of the binding.
#include <napi.h>

#include <mutex>

#include "abort_flag.h"
#include "backends.h"
#include "addon_data.h"
#include "chat_parser.h"
#include "chat_template.h"
#include "context.h"
#include "errors.h"
#include "log.h"
#include "lora_adapter.h"
#include "model.h"
#include "model_load_worker.h"
#include "options.h"

namespace tea {

namespace {

// loadModel(path: string, options: NativeModelOptions, onProgress?: (progress: number) => void,
//           abort?: AbortFlag): Promise<Model>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    std::string path = RequireString(info[0], "path");
    ModelOptions options = ModelOptions::Parse(info[1]);
    if (!info[2].IsUndefined() && !info[2].IsNull() && !info[2].IsFunction()) {
      throw TeaError("ERR_INVALID_ARGUMENT", "onProgress must be a function");
    }
    auto* worker = new ModelLoadWorker(info.Env(), std::move(path), options, info[2], AbortFlag::From(info[3]));
    worker->Queue();
    return worker->Promise();
  });
}

// builtinChatTemplates(): string[]
Napi::Value BuiltinChatTemplates(const Napi::CallbackInfo& info) {
  const std::vector<std::string> names = BuiltinTemplateNames();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

// systemInfo(): string  (the CPU features and backends llama.cpp was built with and detected)
Napi::Value SystemInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), llama_print_system_info()); }

// loadBackends(dirs: string[], gpu: string, cpuVariant: string): NativeBackendReport
// Once per process; must run before the first loadModel in the prebuild layout.
Napi::Value LoadBackendsJs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "dirs must be an array of strings");
    Napi::Array array = info[0].As<Napi::Array>();
    std::vector<std::string> dirs;
    for (uint32_t i = 0; i < array.Length(); ++i) dirs.push_back(RequireString(array.Get(i), "dirs[i]"));
    const BackendReport r = LoadBackends(dirs, RequireString(info[1], "gpu"), RequireString(info[2], "cpuVariant"));
    auto list = [&](const std::vector<std::string>& items) {
      Napi::Array out = Napi::Array::New(env, items.size());
      for (size_t i = 0; i < items.size(); ++i) out.Set(static_cast<uint32_t>(i), items[i]);
      return out;
    };
    Napi::Object out = Napi::Object::New(env);
    out.Set("dynamic", r.dynamic);
    out.Set("cpuVariant", r.cpuVariant);
    out.Set("cpuRejected", list(r.cpuRejected));
    out.Set("gpuLoaded", list(r.gpuLoaded));
    out.Set("gpuFailed", list(r.gpuFailed));
    out.Set("devices", list(r.devices));
    return out;
  });
}

// setLogLevel(level: 0 | 1 | 2 | 3 | 4): void
Napi::Value SetLogLevelJs(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    SetLogLevel(RequireInt(info[0], "level", 0, 4));
    return info.Env().Undefined();
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // llama_backend_init is process-wide and idempotent in effect; once is enough for all environments.
  static std::once_flag backendOnce;
  std::call_once(backendOnce, [] {
    InstallLogger();
    llama_backend_init();
  });

  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function abortFlag = AbortFlag::Define(env);
  Napi::Function model = Model::Define(env);
  Napi::Function context = Context::Define(env);
  data->abortFlagClass = Napi::Persistent(abortFlag);
  data->modelClass = Napi::Persistent(model);
  data->contextClass = Napi::Persistent(context);
  Napi::Function lora = Lora::Define(env);
  data->loraClass = Napi::Persistent(lora);
  exports.Set("Lora", lora);

  exports.Set("AbortFlag", abortFlag);
  exports.Set("Model", model);
  exports.Set("Context", context);
  exports.Set("ChatParser", ChatParser::Define(env));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("builtinChatTemplates", Napi::Function::New(env, BuiltinChatTemplates, "builtinChatTemplates"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("setLogLevel", Napi::Function::New(env, SetLogLevelJs, "setLogLevel"));
  exports.Set("loadBackends", Napi::Function::New(env, LoadBackendsJs, "loadBackends"));
  return exports;
}

}  // namespace

}  // namespace tea

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tea::Init(env, exports); }

NODE_API_MODULE(tea_llama, InitModule)
