#include "context_create_worker.h"

#include <algorithm>

#include "context.h"
#include "log.h"

namespace tea {

ContextCreateWorker::ContextCreateWorker(Napi::Env env, ModelPtr model, Napi::Object modelObject, ContextOptions options,
                                         Napi::Function onEvents, ModelPtr draft)
    : PromiseWorker(env, "tea-llama:ContextCreate"),
      model_(std::move(model)),
      modelObject_(Napi::Persistent(modelObject)),
      onEvents_(Napi::Persistent(onEvents)),
      options_(options),
      draft_(std::move(draft)) {}

ContextCreateWorker::~ContextCreateWorker() {
  speculation_.reset();  // before the target context it drafts for
  if (ctx_ != nullptr) llama_free(ctx_);  // created, but never handed to a scheduler
}

void ContextCreateWorker::Run() {
  const bool speculative = !options_.embeddings && (draft_ != nullptr || options_.speculative.ngram);
  llama_context_params params = llama_context_default_params();
  params.n_ctx = options_.contextSize;
  params.n_batch = options_.batchSize;
  params.n_ubatch = options_.microBatchSize;
  params.n_seq_max = static_cast<uint32_t>(options_.sequences);
  params.n_threads = options_.threads;
  params.n_threads_batch = options_.threadsBatch;
  params.embeddings = options_.embeddings;
  params.flash_attn_type = static_cast<enum llama_flash_attn_type>(options_.flashAttention);
  params.no_perf = true;
  if (options_.embeddings) {
    // A sequence must fit one micro-batch to be pooled (and non-causal models need it whole).
    params.n_ubatch = params.n_batch;
  }
  // llama.cpp reserves one output per sequence and asserts that n_batch holds them: every generating sequence
  // adds a token to each batch, so the batch grows to the sequence count; an embedding batch cannot hold more
  // texts than tokens, so the sequence count shrinks to the batch.
  if (options_.embeddings) {
    options_.sequences = std::min<int32_t>(options_.sequences, static_cast<int32_t>(params.n_batch));
  } else {
    params.n_batch = std::max<uint32_t>(params.n_batch, static_cast<uint32_t>(options_.sequences));
    params.n_ubatch = std::min(params.n_ubatch, params.n_batch);
  }
  params.n_seq_max = static_cast<uint32_t>(options_.sequences);
  if (!options_.embeddings) {
    // The scheduler asks for one output per sequence and batch (a prompt's last token, or a generating sequence's
    // token), as llama-server does; left at 0, llama.cpp sizes the logits buffer and the reserved graph for n_batch
    // outputs (512 x n_vocab floats: 64 MiB for a 32k vocabulary).
    params.n_outputs_max = static_cast<uint32_t>(options_.sequences);
    params.n_outputs_max_per_seq = 1;
    if (speculative) {
      // As llama-server (common_speculative_get_output_limits): a generating sequence's batch holds its sampled
      // token and its draft, each with logits.
      const uint32_t perSequence = std::min<uint32_t>(params.n_batch, static_cast<uint32_t>(Speculation::OutputsPerSequence(options_.speculative, draft_ != nullptr)));
      params.n_outputs_max = std::min<uint32_t>(params.n_batch, perSequence * static_cast<uint32_t>(options_.sequences));
      params.n_outputs_max_per_seq = perSequence;
    }
  }
  // One KV cache shared by every sequence, as llama-server does: a long request may use what the others do not.
  // A single sequence has nothing to share, and a unified cache makes llama.cpp check all LLAMA_MAX_SEQ (256)
  // sequence ids, pairwise, on every decode (llama_batch_allocr::init: measured 0.15 ms per token on stories260K,
  // a third of its decode time).
  params.kv_unified = options_.sequences > 1;
  if (options_.pooling >= 0) params.pooling_type = static_cast<enum llama_pooling_type>(options_.pooling);
  TakeLastError();
  llama_context* ctx = llama_init_from_model(model_->model, params);
  if (ctx == nullptr) {
    const std::string reason = TakeLastError();
    throw TeaError("ERR_CONTEXT_CREATE", "llama.cpp could not create a context" + (reason.empty() ? "" : ": " + reason));
  }
  ctx_ = ctx;
  if (options_.embeddings && llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_NONE) {
    throw TeaError("ERR_INVALID_ARGUMENT", "embeddings need a pooling type (mean, cls or last)");
  }
  // Rank pooling yields n_cls_out scores per text, not n_embd values: the scheduler reads that many (and lib/model.ts
  // refuses rank pooling to a model without a classifier head, which llama.cpp would abort on).
  if (speculative) {
    llama_context* draftCtx = nullptr;
    if (draft_) {
      // The draft context mirrors the target's KV cache sequence for sequence and decodes the target's batches (as
      // common_speculative_init_result makes it for llama-server): the same cells, batch and sequences.
      llama_context_params dp = params;
      dp.n_ctx = llama_n_ctx(ctx);
      dp.n_outputs_max = static_cast<uint32_t>(options_.sequences);
      dp.n_outputs_max_per_seq = 1;
      dp.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
      TakeLastError();
      draftCtx = llama_init_from_model(draft_->model, dp);
      if (draftCtx == nullptr) {
        const std::string reason = TakeLastError();
        throw TeaError("ERR_CONTEXT_CREATE", "llama.cpp could not create the draft model's context" + (reason.empty() ? "" : ": " + reason));
      }
    }
    // Takes the draft context (freed on a throw); keeps the draft model alive with it.
    speculation_ = std::make_unique<Speculation>(ctx, draftCtx, draft_, options_.speculative, options_.sequences);
  }
}

Napi::Value ContextCreateWorker::Result(Napi::Env env) {
  SchedulerOptions options;
  options.sequences = options_.sequences;
  options.maxQueued = options_.maxQueued;
  options.embeddings = options_.embeddings;
  // llama.cpp may round n_ctx up (to a multiple of 256): the requested size is the one enforced per sequence.
  options.sequenceLimit = options_.contextSize > 0 ? static_cast<int32_t>(std::min(options_.contextSize, llama_n_ctx(ctx_))) : 0;
  llama_context* ctx = ctx_;
  ctx_ = nullptr;
  return Context::Create(env, model_, ctx, options, modelObject_.Value(), onEvents_.Value(), std::move(speculation_));
}

}  // namespace tea
