#include "context.h"

#include "addon_data.h"
#include "errors.h"
#include "lora_adapter.h"
#include "options.h"

namespace tea {

namespace {

// { prefix, suffix, prompt, extra: [{ filename, text }] }: lib/model.ts validates and fills every field.
InfillInput ParseInfill(const Napi::Object& obj) {
  InfillInput input;
  input.prefix = RequireString(obj.Get("prefix"), "prefix");
  input.suffix = RequireString(obj.Get("suffix"), "suffix");
  input.prompt = RequireString(obj.Get("prompt"), "prompt");
  Napi::Value extra = obj.Get("extra");
  if (!extra.IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "extra must be an array of { filename, text }");
  Napi::Array chunks = extra.As<Napi::Array>();
  for (uint32_t i = 0; i < chunks.Length(); ++i) {
    Napi::Value chunk = chunks.Get(i);
    if (!chunk.IsObject()) throw TeaError("ERR_INVALID_ARGUMENT", "extra[i] must be { filename, text }");
    Napi::Object c = chunk.As<Napi::Object>();
    input.extra.push_back({RequireString(c.Get("filename"), "extra[i].filename"), RequireString(c.Get("text"), "extra[i].text")});
  }
  return input;
}

}  // namespace

Napi::Function Context::Define(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod<&Context::Generate>("generate"),
                         InstanceMethod<&Context::Embed>("embed"),
                         InstanceMethod<&Context::SaveState>("saveState"),
                         InstanceMethod<&Context::LoadState>("loadState"),
                         InstanceMethod<&Context::ReserveSequence>("reserveSequence"),
                         InstanceMethod<&Context::ReleaseSequence>("releaseSequence"),
                         InstanceMethod<&Context::Cancel>("cancel"),
                         InstanceMethod<&Context::Info>("info"),
                         InstanceMethod<&Context::Dispose>("dispose"),
                         InstanceAccessor<&Context::Disposed>("disposed"),
                     });
}

Napi::Object Context::Create(Napi::Env env, ModelPtr model, llama_context* ctx, SchedulerOptions options, Napi::Object modelObject,
                             Napi::Function onEvents, std::unique_ptr<Speculation> speculation) {
  Napi::Object object = AddonData::Of(env)->contextClass.New({});
  Context* context = Context::Unwrap(object);
  context->channel_ = std::make_unique<EventChannel>(env, onEvents);
  context->embeddings_ = options.embeddings;
  context->llamaModel_ = model->model;
  context->scheduler_ = std::make_unique<Scheduler>(ctx, std::move(model), options, context->channel_.get(), std::move(speculation));
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
    if (info[3].IsObject()) task.infill = ParseInfill(info[3].As<Napi::Object>());
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
    if (info[2].IsString()) task.rerankQuery = info[2].As<Napi::String>().Utf8Value();
    task.id = nextId_++;
    const uint64_t id = task.id;
    scheduler.Submit(std::move(task));
    channel_->Started();
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Context::SaveState(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Scheduler& scheduler = Live();
    StateTask task;
    task.op = StateTask::Op::Save;
    task.sequence = RequireInt(info[0], "sequence", 0, 255);
    task.meta = RequireString(info[1], "meta");
    task.id = nextId_++;
    const uint64_t id = task.id;
    scheduler.Submit(std::move(task));
    channel_->Started();
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Context::LoadState(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Scheduler& scheduler = Live();
    if (!info[0].IsBuffer()) throw TeaError("ERR_INVALID_ARGUMENT", "data must be a Buffer");
    Napi::Buffer<uint8_t> buffer = info[0].As<Napi::Buffer<uint8_t>>();
    StateTask task;
    task.op = StateTask::Op::Load;
    task.sequence = RequireInt(info[1], "sequence", -1, 255);
    task.data.assign(buffer.Data(), buffer.Data() + buffer.Length());  // the scheduler thread reads its own copy
    task.id = nextId_++;
    const uint64_t id = task.id;
    scheduler.Submit(std::move(task));
    channel_->Started();
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Context::ReserveSequence(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), Live().Reserve()); });
}

Napi::Value Context::ReleaseSequence(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (scheduler_) scheduler_->Release(RequireInt(info[0], "sequence", 0, 255));
    return info.Env().Undefined();
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
    out.Set("speculative", s.speculative());
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
