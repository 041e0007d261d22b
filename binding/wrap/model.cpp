#include "model.h"

#include <cmath>
#include <vector>

#include "abort_flag.h"
#include "addon_data.h"
#include "chat.h"
#include "chat_template.h"
#include "context_create_worker.h"
#include "errors.h"
#include "lora_adapter.h"
#include "options.h"
#include "promise_worker.h"
#include "text_utils.h"
#include "text_worker.h"

namespace tea {

namespace {

int32_t MetaInt(const llama_model* model, const std::string& key, int32_t fallback) {
  const std::string value = MetaString(model, key.c_str());
  if (value.empty()) return fallback;
  try {
    return static_cast<int32_t>(std::stol(value));
  } catch (...) {
    return fallback;
  }
}

std::vector<ChatMessage> ReadMessages(const Napi::Value& value) {
  if (!value.IsArray()) throw TeaError("ERR_INVALID_ARGUMENT", "messages must be an array of {role, content}");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<ChatMessage> messages;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsObject()) throw TeaError("ERR_INVALID_ARGUMENT", "messages[" + std::to_string(i) + "] must be an object");
    Napi::Object obj = item.As<Napi::Object>();
    Napi::Value role = obj.Get("role");
    Napi::Value content = obj.Get("content");
    if (!role.IsString() || !content.IsString()) {
      throw TeaError("ERR_INVALID_ARGUMENT", "messages[" + std::to_string(i) + "] needs string role and content");
    }
    messages.push_back({role.As<Napi::String>().Utf8Value(), content.As<Napi::String>().Utf8Value()});
  }
  return messages;
}

// {maxDepth, maxSteps, maxOutputBytes, timeoutMs}: lib/model.ts validates and fills every field; these checks keep
// the native layer safe on its own.
TemplateLimits ReadTemplateLimits(const Napi::Value& value) {
  if (!value.IsObject()) throw TeaError("ERR_INVALID_ARGUMENT", "template limits must be an object");
  Napi::Object obj = value.As<Napi::Object>();
  auto read = [&](const char* name, double max) {
    Napi::Value v = obj.Get(name);
    const double n = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(n >= 1 && n <= max) || std::floor(n) != n) {
      throw TeaError("ERR_INVALID_ARGUMENT", std::string(name) + " must be an integer from 1 to " + std::to_string(static_cast<uint64_t>(max)));
    }
    return n;
  };
  TemplateLimits limits;
  limits.maxDepth = static_cast<uint32_t>(read("maxDepth", 10000));
  limits.maxSteps = static_cast<uint64_t>(read("maxSteps", 1e12));
  limits.maxOutputBytes = static_cast<uint64_t>(read("maxOutputBytes", 1024.0 * 1024 * 1024));
  limits.timeoutMs = static_cast<uint32_t>(read("timeoutMs", 3600000));
  return limits;
}

// Main thread, after a render: keeps the parse it made of a Jinja source (emplace leaves an entry already cached).
void RememberParse(TemplateCache& cache, const ChatRenderJob& job) {
  if (job.parsed && !job.builtin) cache.emplace(job.source, job.parsed);
}

// Parses and renders a chat template on its own thread (ChatRenderJob::Render), so the main thread stays free and
// the request's AbortFlag stops it.
class ChatTemplateWorker : public PromiseWorker {
 public:
  // Main thread. `handle` keeps the model alive while the render runs; `cache` receives a fresh parse.
  ChatTemplateWorker(Napi::Env env, ModelPtr handle, ChatRenderJob job, std::shared_ptr<TemplateCache> cache)
      : PromiseWorker(env, "tea-llama:applyChatTemplate"), handle_(std::move(handle)), job_(std::move(job)), cache_(std::move(cache)) {}

 protected:
  // Worker (pool) thread: waits for the render thread.
  void Run() override { prompt_ = job_.Render(); }
  // Main thread.
  Napi::Value Result(Napi::Env env) override {
    RememberParse(*cache_, job_);
    return Napi::String::New(env, prompt_);
  }
  // Main thread.
  void Settled() override { handle_.reset(); }

 private:
  ModelPtr handle_;
  ChatRenderJob job_;
  std::shared_ptr<TemplateCache> cache_;
  std::string prompt_;
};

}  // namespace

ModelInfo ModelInfo::Read(const llama_model* model, bool vocabOnly) {
  ModelInfo info;
  info.vocabOnly = vocabOnly;
  info.architecture = MetaString(model, "general.architecture");
  info.name = MetaString(model, "general.name");
  char desc[256];
  const int32_t n = llama_model_desc(model, desc, sizeof(desc));
  if (n > 0) info.description.assign(desc, std::min<size_t>(static_cast<size_t>(n), sizeof(desc) - 1));
  const char* tmpl = llama_model_chat_template(model, nullptr);
  info.hasChatTemplate = tmpl != nullptr;
  if (tmpl) info.chatTemplate = tmpl;
  info.trainedContextLength = llama_model_n_ctx_train(model);
  info.embeddingLength = llama_model_n_embd(model);
  info.layerCount = llama_model_n_layer(model);
  info.headCount = MetaInt(model, info.architecture + ".attention.head_count", 0);
  info.headCountKv = MetaInt(model, info.architecture + ".attention.head_count_kv", info.headCount);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  info.vocabSize = llama_vocab_n_tokens(vocab);
  info.bosToken = llama_vocab_bos(vocab);
  info.eosToken = llama_vocab_eos(vocab);
  info.parameterCount = llama_model_n_params(model);
  info.sizeBytes = llama_model_size(model);
  info.hasEncoder = llama_model_has_encoder(model);
  info.hasDecoder = llama_model_has_decoder(model);
  info.isRecurrent = llama_model_is_recurrent(model);
  const int32_t count = llama_model_meta_count(model);
  for (int32_t i = 0; i < count; ++i) {
    info.metadata.emplace(ReadString([&](char* buf, size_t size) { return llama_model_meta_key_by_index(model, i, buf, size); }),
                          ReadString([&](char* buf, size_t size) { return llama_model_meta_val_str_by_index(model, i, buf, size); }));
  }
  return info;
}

Napi::Function Model::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&Model::Info>("info"),
                         InstanceMethod<&Model::TokenizeText>("tokenize"),
                         InstanceMethod<&Model::DetokenizeTokens>("detokenize"),
                         InstanceMethod<&Model::TokenizeAsync>("tokenizeAsync"),
                         InstanceMethod<&Model::DetokenizeAsync>("detokenizeAsync"),
                         InstanceMethod<&Model::TokenPiece>("tokenToPiece"),
                         InstanceMethod<&Model::TokenPieces>("tokenPieces"),
                         InstanceMethod<&Model::Vocabulary>("vocabulary"),
                         InstanceMethod<&Model::ApplyChatTemplate>("applyChatTemplate"),
                         InstanceMethod<&Model::ApplyChatTemplateSync>("applyChatTemplateSync"),
                         InstanceMethod<&Model::CreateContext>("createContext"),
                         InstanceMethod<&Model::LoadLora>("loadLora"),
                         InstanceMethod<&Model::Dispose>("dispose"),
                         InstanceAccessor<&Model::Disposed>("disposed"),
                     });
}

Napi::Object Model::Create(Napi::Env env, ModelPtr handle, ModelInfo info) {
  Napi::Object object = AddonData::Of(env)->modelClass.New({});
  Model* model = Model::Unwrap(object);
  model->handle_ = std::move(handle);
  model->info_ = std::move(info);
  return object;
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {}

// Finalizer safety net: drops this wrapper's share; contexts and workers still holding the handle keep it alive.
Model::~Model() = default;

const ModelPtr& Model::handle() const {
  if (!handle_) throw TeaError("ERR_DISPOSED", "the model has been disposed");
  return handle_;
}

Napi::Value Model::Info(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    handle();
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("architecture", info_.architecture);
    out.Set("name", info_.name);
    out.Set("description", info_.description);
    out.Set("chatTemplate", info_.hasChatTemplate ? Napi::Value(Napi::String::New(env, info_.chatTemplate)) : env.Null());
    out.Set("trainedContextLength", info_.trainedContextLength);
    out.Set("embeddingLength", info_.embeddingLength);
    out.Set("layerCount", info_.layerCount);
    out.Set("headCount", info_.headCount);
    out.Set("headCountKv", info_.headCountKv);
    out.Set("vocabSize", info_.vocabSize);
    out.Set("bosToken", info_.bosToken);
    out.Set("eosToken", info_.eosToken);
    out.Set("parameterCount", static_cast<double>(info_.parameterCount));
    out.Set("sizeBytes", static_cast<double>(info_.sizeBytes));
    out.Set("hasEncoder", info_.hasEncoder);
    out.Set("hasDecoder", info_.hasDecoder);
    out.Set("isRecurrent", info_.isRecurrent);
    out.Set("vocabOnly", info_.vocabOnly);
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : info_.metadata) metadata.Set(key, value);
    out.Set("metadata", metadata);
    return out;
  });
}

Napi::Value Model::TokenizeText(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    const std::string text = RequireString(info[0], "text");
    const std::vector<llama_token> tokens = Tokenize(model->vocab(), text, info[1].ToBoolean(), info[2].ToBoolean());
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), tokens.size());
    std::copy(tokens.begin(), tokens.end(), out.Data());
    return out;
  });
}

Napi::Value Model::DetokenizeTokens(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    const std::vector<llama_token> tokens = RequireTokens(info[0], llama_vocab_n_tokens(model->vocab()));
    return Napi::String::New(info.Env(), Detokenize(model->vocab(), tokens, info[1].ToBoolean(), info[2].ToBoolean()));
  });
}

Napi::Value Model::TokenizeAsync(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    std::string text = RequireString(info[0], "text");
    auto* worker = new TextWorker(info.Env(), model, std::move(text), info[1].ToBoolean(), info[2].ToBoolean(), AbortFlag::From(info[3]));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::DetokenizeAsync(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    std::vector<llama_token> tokens = RequireTokens(info[0], llama_vocab_n_tokens(model->vocab()));
    auto* worker = new TextWorker(info.Env(), model, std::move(tokens), info[1].ToBoolean(), info[2].ToBoolean(), AbortFlag::From(info[3]));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::TokenPiece(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    const int32_t token = RequireInt(info[0], "token", 0, llama_vocab_n_tokens(model->vocab()) - 1);
    return Napi::String::New(info.Env(), TokenToPiece(model->vocab(), token, info[1].ToBoolean()));
  });
}

Napi::Value Model::TokenPieces(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    const std::vector<llama_token> tokens = RequireTokens(info[0], llama_vocab_n_tokens(model->vocab()));
    Napi::Array out = Napi::Array::New(info.Env(), tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string piece = TokenToPiece(model->vocab(), tokens[i], /*special=*/true);
      Napi::Uint8Array bytes = Napi::Uint8Array::New(info.Env(), piece.size());
      std::copy(piece.begin(), piece.end(), bytes.Data());
      out.Set(static_cast<uint32_t>(i), bytes);
    }
    return out;
  });
}

Napi::Value Model::Vocabulary(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const llama_vocab* vocab = handle()->vocab();
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    // LLAMA_TOKEN_NULL is -1: the JS side reads it as "none".
    const std::pair<const char*, llama_token> ids[] = {
        {"bos", llama_vocab_bos(vocab)},         {"eos", llama_vocab_eos(vocab)},         {"eot", llama_vocab_eot(vocab)},
        {"sep", llama_vocab_sep(vocab)},         {"nl", llama_vocab_nl(vocab)},           {"pad", llama_vocab_pad(vocab)},
        {"mask", llama_vocab_mask(vocab)},       {"fimPre", llama_vocab_fim_pre(vocab)},  {"fimSuf", llama_vocab_fim_suf(vocab)},
        {"fimMid", llama_vocab_fim_mid(vocab)},  {"fimPad", llama_vocab_fim_pad(vocab)},  {"fimRep", llama_vocab_fim_rep(vocab)},
        {"fimSep", llama_vocab_fim_sep(vocab)},
    };
    for (const auto& [name, id] : ids) out.Set(name, id);
    out.Set("addBos", llama_vocab_get_add_bos(vocab));
    out.Set("addEos", llama_vocab_get_add_eos(vocab));
    out.Set("addSep", llama_vocab_get_add_sep(vocab));
    out.Set("type", static_cast<int32_t>(llama_vocab_type(vocab)));
    out.Set("size", llama_vocab_n_tokens(vocab));
    return out;
  });
}

ChatRenderJob Model::PrepareRender(const Napi::CallbackInfo& info) {
  const ModelPtr& model = handle();
  ChatRenderJob job;
  job.model = model->model;
  job.messages = ReadMessages(info[0]);
  job.addAssistant = info[2].ToBoolean();
  job.limits = ReadTemplateLimits(info[3]);
  if (info[1].IsString()) {
    job.source = info[1].As<Napi::String>().Utf8Value();
    if (job.source.empty()) throw TeaError("ERR_INVALID_ARGUMENT", "template must not be empty");
  } else if (!info_.hasChatTemplate) {
    throw TeaError("ERR_TEMPLATE_NOT_FOUND", "the model has no chat template; pass a template string or a built-in template name");
  }
  job.Classify();
  if (info[5].IsString()) job.openaiJson = info[5].As<Napi::String>().Utf8Value();
  job.full = info[6].ToBoolean();
  if (!job.builtin) {
    auto cached = templates_->find(job.source);
    if (cached != templates_->end()) job.parsed = cached->second;
  }
  return job;
}

Napi::Value Model::ApplyChatTemplate(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    ChatRenderJob job = PrepareRender(info);
    job.abort = AbortFlag::From(info[4]);
    auto* worker = new ChatTemplateWorker(info.Env(), handle(), std::move(job), templates_);
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::ApplyChatTemplateSync(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    ChatRenderJob job = PrepareRender(info);
    const std::string prompt = job.Render();
    RememberParse(*templates_, job);
    return Napi::String::New(info.Env(), prompt);
  });
}

Napi::Value Model::CreateContext(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    if (info_.vocabOnly) throw TeaError("ERR_MODEL_VOCAB_ONLY", "the model was loaded with vocabOnly: it has no weights to run");
    ContextOptions options = ContextOptions::Parse(info[0]);
    if (!info[1].IsFunction()) throw TeaError("ERR_INVALID_ARGUMENT", "onEvents must be a function");
    ModelPtr draft;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject() || !info[2].As<Napi::Object>().InstanceOf(AddonData::Of(info.Env())->modelClass.Value())) {
        throw TeaError("ERR_INVALID_ARGUMENT", "the draft model must be a loaded model");
      }
      const Model* other = Model::Unwrap(info[2].As<Napi::Object>());
      if (other->info_.vocabOnly) throw TeaError("ERR_MODEL_VOCAB_ONLY", "the draft model was loaded with vocabOnly: it has no weights to run");
      draft = other->handle();
    }
    if (options.embeddings && (draft || options.speculative.ngram)) throw TeaError("ERR_INVALID_ARGUMENT", "an embedding context does not generate: no speculative decoding");
    auto* worker = new ContextCreateWorker(info.Env(), model, Value(), options, info[1].As<Napi::Function>(), std::move(draft));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::LoadLora(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    const ModelPtr& model = handle();
    if (info_.vocabOnly) throw TeaError("ERR_MODEL_VOCAB_ONLY", "the model was loaded with vocabOnly: it has no weights to adapt");
    std::string path = RequireString(info[0], "path");
    auto* worker = new LoraLoadWorker(info.Env(), model, std::move(path));
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  templates_->clear();
  handle_.reset();
  return info.Env().Undefined();
}

Napi::Value Model::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !handle_); }

}  // namespace tea
