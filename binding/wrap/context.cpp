#include "context.h"

#include "addon_data.h"
#include "errors.h"
#include "lora_adapter.h"
#include "options.h"

namespace tea {

Napi::Function Context::Define(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod<&Context::Generate>("generate"),
                         InstanceMethod<&Context::Embed>("embed"),
                         InstanceMethod<&Context::Cancel>("cancel"),
                         InstanceMethod<&Context::Info>("info"),
                         InstanceMethod<&Context::Dispose>("dispose"),
                         InstanceAccessor<&Context::Disposed>("disposed"),
                     });
}

Napi::Object Context::Create(Napi::Env env, ModelPtr model, llama_context* ctx, SchedulerOptions options, Napi::Object modelObject,
                             Napi::Function onEvents) {
  Napi::Object object = AddonData::Of(env)->contextClass.New({});
  Context* context = Context::Unwrap(object);
  context->channel_ = std::make_unique<EventChannel>(env, onEvents);
  context->embeddings_ = options.embeddings;
  context->llamaModel_ = model->model;
  context->scheduler_ = std::make_unique<Scheduler>(ctx, std::move(model), options, context->channel_.get());
  context->model_ = Napi::Persistent(modelObject);
  // worker.terminate() tears the environment down without a dispose(): the scheduler must stop first.
  context->env_ = env;
  napi_add_env_cleanup_hook(env, &Context::OnEnvCleanup, context);
  context->cleanupHook_ = true;
  return object;
}

Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {}

Context::~Context() { Shutdown(); }

void Context::OnEnvCleanup(void* self) {
  auto* context = static_cast<Context*>(self);
  context->cleanupHook_ = false;  // a hook is removed by running it
  context->Shutdown();
}

void Context::Shutdown() {
  if (cleanupHook_) {
    napi_remove_env_cleanup_hook(env_, &Context::OnEnvCleanup, this);
    cleanupHook_ = false;
  }
  scheduler_.reset();  // stops and joins: its last events are published before the channel closes
  if (channel_) channel_->Close();
}

Scheduler& Context::Live() {
  if (!scheduler_) throw TeaError("ERR_DISPOSED", "the model has been disposed");
  return *scheduler_;
}

Napi::Value Context::Generate(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Scheduler& scheduler = Live();
    GenerationTask task = ParseGenerationTask(info[0], info[1], info[2].ToBoolean());
    if (info[1].IsObject()) task.lora = ParseLoraConfig(info[1].As<Napi::Object>().Get("lora"), llamaModel_);
    task.id = nextId_++;
    const uint64_t id = task.id;
    scheduler.Submit(std::move(task));
    channel_->Started();
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Context::Embed(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Scheduler& scheduler = Live();
    if (!info[0].IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "texts must be an array of strings");
    Napi::Array array = info[0].As<Napi::Array>();
    EmbeddingTask task;
    for (uint32_t i = 0; i < array.Length(); ++i) task.texts.push_back(RequireString(array.Get(i), "texts[i]"));
    task.normalize = info[1].ToBoolean();
    task.id = nextId_++;
    const uint64_t id = task.id;
    scheduler.Submit(std::move(task));
    channel_->Started();
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Context::Cancel(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsNumber()) throw TeaError("ERR_INVALID_ARGUMENT", "id must be a number");
    if (scheduler_) scheduler_->Cancel(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  });
}

Napi::Value Context::Info(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Scheduler& s = Live();
    const Scheduler::Counts counts = s.counts();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("contextSize", s.options().sequenceLimit);
    out.Set("kvCells", s.contextSize());
    out.Set("batchSize", s.batchSize());
    out.Set("microBatchSize", s.microBatchSize());
    out.Set("sequences", s.options().sequences);
    out.Set("maxQueued", s.options().maxQueued);
    out.Set("active", counts.active);
    out.Set("queued", counts.queued);
    out.Set("embeddings", embeddings_);
    out.Set("pooling", s.pooling());
    return out;
  });
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  Shutdown();
  if (!model_.IsEmpty()) model_.Reset();
  return info.Env().Undefined();
}

Napi::Value Context::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !scheduler_); }

}  // namespace tea
