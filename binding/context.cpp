#include "context.h"

#include "abort_flag.h"
#include "addon_data.h"
#include "context_complete_worker.h"
#include "context_embed_worker.h"
#include "errors.h"
#include "options.h"

namespace tea {

Napi::Function Context::Define(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod<&Context::Complete>("complete"),
                         InstanceMethod<&Context::Embed>("embed"),
                         InstanceMethod<&Context::Info>("info"),
                         InstanceMethod<&Context::Dispose>("dispose"),
                         InstanceAccessor<&Context::Disposed>("disposed"),
                     });
}

Napi::Object Context::Create(Napi::Env env, ContextPtr handle, Napi::Object model) {
  Napi::Object object = AddonData::Of(env)->contextClass.New({});
  Context* context = Context::Unwrap(object);
  context->handle_ = std::move(handle);
  context->model_ = Napi::Persistent(model);
  return object;
}

Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {}

ContextPtr Context::Acquire() {
  if (!handle_) throw TeaError("ERR_DISPOSED", "the context has been disposed");
  if (handle_->busy.exchange(true)) throw TeaError("ERR_BUSY", "the context is already running an operation");
  return handle_;
}

Napi::Value Context::Complete(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!handle_) throw TeaError("ERR_DISPOSED", "the context has been disposed");
    if (handle_->embeddings) throw TeaError("ERR_INVALID_ARGUMENT", "this context computes embeddings, not completions");
    std::string prompt = RequireString(info[0], "prompt");
    CompleteOptions options = CompleteOptions::Parse(info[1]);
    SharedFlag abort = AbortFlag::From(info[3]);
    if (!info[2].IsUndefined() && !info[2].IsNull() && !info[2].IsFunction()) {
      throw TeaError("ERR_INVALID_ARGUMENT", "onChunk must be a function");
    }
    auto* worker = new ContextCompleteWorker(info.Env(), Acquire(), std::move(prompt), std::move(options), info[2], std::move(abort));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Context::Embed(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!handle_) throw TeaError("ERR_DISPOSED", "the context has been disposed");
    if (!handle_->embeddings) throw TeaError("ERR_INVALID_ARGUMENT", "this context was not created for embeddings");
    if (!info[0].IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "texts must be an array of strings");
    Napi::Array array = info[0].As<Napi::Array>();
    std::vector<std::string> texts;
    for (uint32_t i = 0; i < array.Length(); ++i) texts.push_back(RequireString(array.Get(i), "texts[i]"));
    SharedFlag abort = AbortFlag::From(info[2]);
    auto* worker = new ContextEmbedWorker(info.Env(), Acquire(), std::move(texts), info[1].ToBoolean(), std::move(abort));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Context::Info(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!handle_) throw TeaError("ERR_DISPOSED", "the context has been disposed");
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("contextSize", handle_->limit);
    out.Set("batchSize", llama_n_batch(handle_->ctx));
    out.Set("microBatchSize", llama_n_ubatch(handle_->ctx));
    out.Set("embeddings", handle_->embeddings);
    out.Set("pooling", static_cast<int32_t>(llama_pooling_type(handle_->ctx)));
    return out;
  });
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  if (handle_) {
    // A running worker holds its own share of the handle: it sees `disposing`, stops, and the last share frees.
    handle_->disposing.store(true);
    handle_.reset();
  }
  if (!model_.IsEmpty()) model_.Reset();
  return info.Env().Undefined();
}

Napi::Value Context::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !handle_); }

}  // namespace tea
