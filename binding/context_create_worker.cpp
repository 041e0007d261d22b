#include "context_create_worker.h"

#include "context.h"
#include "log.h"

namespace tea {

ContextCreateWorker::ContextCreateWorker(Napi::Env env, ModelPtr model, Napi::Object modelObject, ContextOptions options)
    : PromiseWorker(env, "tea-llama:ContextCreate"),
      model_(std::move(model)),
      modelObject_(Napi::Persistent(modelObject)),
      options_(options) {}

void ContextCreateWorker::Run() {
  llama_context_params params = llama_context_default_params();
  params.n_ctx = options_.contextSize;
  params.n_batch = options_.batchSize;
  params.n_ubatch = options_.microBatchSize;
  params.n_seq_max = 1;
  params.n_threads = options_.threads;
  params.n_threads_batch = options_.threadsBatch;
  params.embeddings = options_.embeddings;
  params.flash_attn_type = static_cast<enum llama_flash_attn_type>(options_.flashAttention);
  params.no_perf = true;
  if (options_.embeddings) {
    // A sequence must fit one micro-batch to be pooled (and non-causal models need it whole).
    params.n_ubatch = params.n_batch;
  }
  if (options_.pooling >= 0) params.pooling_type = static_cast<enum llama_pooling_type>(options_.pooling);
  TakeLastError();
  llama_context* ctx = llama_init_from_model(model_->model, params);
  if (ctx == nullptr) {
    const std::string reason = TakeLastError();
    throw TeaError("ERR_CONTEXT_CREATE", "llama.cpp could not create a context" + (reason.empty() ? "" : ": " + reason));
  }
  context_ = std::make_shared<ContextHandle>(model_, ctx, options_.embeddings, options_.contextSize);
  if (options_.embeddings && llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_NONE) {
    context_.reset();
    throw TeaError("ERR_INVALID_ARGUMENT", "embeddings need a pooling type (mean, cls or last)");
  }
  // A reranker's own pooling (rank) yields n_cls_out scores per text, not an embedding of n_embd values: reading
  // n_embd floats from it would run past llama.cpp's buffer.
  if (options_.embeddings && llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_RANK) {
    context_.reset();
    throw TeaError("ERR_INVALID_ARGUMENT", "the model pools by rank (a reranker): it gives scores, not embeddings; pass pooling mean, cls or last");
  }
}

Napi::Value ContextCreateWorker::Result(Napi::Env env) {
  return Context::Create(env, std::move(context_), modelObject_.Value());
}

}  // namespace tea
