#include "model_load_worker.h"

#include <algorithm>
#include <vector>

#include "ggml-backend.h"

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
  // RPC servers: their devices go to this model only (passed as params.devices, not registered process-wide, so
  // other models keep the default device choice), first, then the local GPUs: llama.cpp's own default order.
  std::vector<ggml_backend_dev_t> devices;
  if (!options_.rpcServers.empty()) {
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    using AddServerFn = ggml_backend_reg_t (*)(const char*);
    auto addServer = rpc ? reinterpret_cast<AddServerFn>(ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server")) : nullptr;
    if (addServer == nullptr) throw TeaError("ERR_BACKEND_UNAVAILABLE", "this build of the addon has no RPC backend (GGML_RPC)");
    for (const std::string& server : options_.rpcServers) {
      ggml_backend_reg_t reg = addServer(server.c_str());
      if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0) throw TeaError("ERR_RPC_CONNECTION", "RPC server " + server + " has no devices");
      for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) devices.push_back(ggml_backend_reg_dev_get(reg, i));
    }
    std::vector<ggml_backend_dev_t> igpus;
    bool gpu = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
      ggml_backend_dev_t dev = ggml_backend_dev_get(i);
      const auto type = ggml_backend_dev_type(dev);
      if (type == GGML_BACKEND_DEVICE_TYPE_GPU && ggml_backend_dev_backend_reg(dev) != rpc) devices.push_back(dev), gpu = true;
      if (type == GGML_BACKEND_DEVICE_TYPE_IGPU) igpus.push_back(dev);
    }
    if (!gpu) devices.insert(devices.end(), igpus.begin(), igpus.end());
    devices.push_back(nullptr);
    params.devices = devices.data();
  }
  std::vector<float> split;
  if (!options_.tensorSplit.empty()) {
    split.assign(llama_max_devices(), 0.0f);
    std::copy(options_.tensorSplit.begin(), options_.tensorSplit.end(), split.begin());
    params.tensor_split = split.data();
  }
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
    // llama.cpp catches the RPC client's exception and logs it: a server lost while the weights were sent.
    if (IsRpcLost(reason)) throw TeaError("ERR_RPC_CONNECTION", "llama.cpp could not load " + path_ + ": " + reason);
    throw TeaError("ERR_MODEL_INVALID", "llama.cpp could not load " + path_ + (reason.empty() ? "" : ": " + reason));
  }
  handle_ = std::make_shared<ModelHandle>(model);
  // Now that the model holds its RPC connections: a server that stops answering fails them after rpcTimeoutMs
  // (patches/rpc-lost-server.patch) instead of stalling the generation for ever.
  if (!options_.rpcServers.empty()) {
    using SetTimeoutFn = bool (*)(const char*, int);
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    auto setTimeout = rpc ? reinterpret_cast<SetTimeoutFn>(ggml_backend_reg_get_proc_address(rpc, "tea_rpc_set_timeout")) : nullptr;
    for (const std::string& server : options_.rpcServers) {
      if (setTimeout == nullptr || !setTimeout(server.c_str(), options_.rpcTimeoutMs)) {
        handle_.reset();
        throw TeaError("ERR_RPC_CONNECTION", "RPC server " + server + ": cannot set rpcTimeoutMs on its connection");
      }
    }
  }
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
