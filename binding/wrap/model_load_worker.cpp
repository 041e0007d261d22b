#include "model_load_worker.h"

#include "log.h"
#include "vocab_check.h"

namespace tea {

ModelLoadWorker::ModelLoadWorker(Napi::Env env, std::string path, ModelOptions options, Napi::Value onProgress, SharedFlag abort)
    : PromiseWorker(env, "tea-llama:ModelLoad"), path_(std::move(path)), options_(options), abort_(std::move(abort)) {
  watch_.emplace(env, abort_);
  if (onProgress.IsFunction()) {
    progress_ = Napi::ThreadSafeFunction::New(env, onProgress.As<Napi::Function>(), "tea-llama:ModelLoadProgress", 0, 1);
  }
}

ModelLoadWorker::~ModelLoadWorker() = default;

bool ModelLoadWorker::OnProgress(float progress, void* self) {
  auto* worker = static_cast<ModelLoadWorker*>(self);
  worker->watch_->Ping();
  const int percent = static_cast<int>(progress * 100.0f);
  if (worker->progress_ && percent != worker->lastPercent_) {
    worker->lastPercent_ = percent;
    worker->progress_->NonBlockingCall([progress](Napi::Env env, Napi::Function fn) {
      if (env == nullptr) return;
      try {
        fn.Call({Napi::Number::New(env, progress)});
      } catch (const Napi::Error&) {
        // A throwing progress callback must not take the load down; the TS layer reports it.
      }
    });
  }
  return !worker->abort_->load();
}

void ModelLoadWorker::Run() {
  struct ReleaseWatch {
    EnvWatch& watch;
    ~ReleaseWatch() { watch.Release(); }
  } releaseWatch{*watch_};
  if (abort_->load()) throw TeaError("ERR_ABORTED", "model load aborted");
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = options_.gpuLayers;
  params.vocab_only = options_.vocabOnly;
  params.load_mode = options_.useMmap ? params.load_mode : LLAMA_LOAD_MODE_NONE;
  params.progress_callback = &ModelLoadWorker::OnProgress;
  params.progress_callback_user_data = this;
  try {
    CheckTokenTable(path_);
  } catch (const TeaError& e) {
    throw TeaError(e.code(), path_ + ": " + e.what());
  }
  TakeLastError();
  llama_model* model = llama_model_load_from_file(path_.c_str(), params);
  if (model == nullptr) {
    const std::string reason = TakeLastError();
    if (abort_->load()) throw TeaError("ERR_ABORTED", "model load aborted");
    throw TeaError("ERR_MODEL_INVALID", "llama.cpp could not load " + path_ + (reason.empty() ? "" : ": " + reason));
  }
  handle_ = std::make_shared<ModelHandle>(model);
  try {
    CheckVocabulary(llama_model_get_vocab(model));
  } catch (const TeaError& e) {
    handle_.reset();
    throw TeaError(e.code(), path_ + ": " + e.what());
  }
  info_ = ModelInfo::Read(model, options_.vocabOnly);
}

Napi::Value ModelLoadWorker::Result(Napi::Env env) { return Model::Create(env, std::move(handle_), std::move(info_)); }

void ModelLoadWorker::Settled() {
  if (progress_) {
    progress_->Release();
    progress_.reset();
  }
}

}  // namespace tea
