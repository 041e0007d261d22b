#include "context_embed_worker.h"

#include <algorithm>
#include <cmath>

#include "text_utils.h"

namespace tea {

ContextEmbedWorker::ContextEmbedWorker(Napi::Env env, ContextPtr context, std::vector<std::string> texts, bool normalize,
                                       SharedFlag abort)
    : PromiseWorker(env, "tea-llama:ContextEmbed"),
      context_(std::move(context)),
      texts_(std::move(texts)),
      normalize_(normalize),
      abort_(std::move(abort)) {
  watch_.emplace(env, abort_);
}

void ContextEmbedWorker::Run() {
  struct ReleaseWatch {
    EnvWatch& watch;
    ~ReleaseWatch() { watch.Release(); }
  } releaseWatch{*watch_};
  context_->compute.Run([this] { Embed(); });
}

void ContextEmbedWorker::Embed() {
  ContextHandle& h = *context_;
  h.activeAbort.store(abort_.get());
  h.activeWatch.store(&*watch_);
  struct ClearAbort {
    ContextHandle& h;
    ~ClearAbort() {
      h.activeAbort.store(nullptr);
      h.activeWatch.store(nullptr);
    }
  } clearAbort{h};

  llama_context* ctx = h.ctx;
  const llama_model* model = h.model->model;
  const llama_vocab* vocab = h.model->vocab();
  const int32_t capacity = static_cast<int32_t>(std::min(h.limit, llama_n_ubatch(ctx)));
  const int32_t nEmbd = llama_model_n_embd_out(model) > 0 ? llama_model_n_embd_out(model) : llama_model_n_embd(model);
  const bool encoderOnly = llama_model_has_encoder(model) && !llama_model_has_decoder(model);
  h.cachedTokens.clear();

  for (size_t t = 0; t < texts_.size(); ++t) {
    watch_->Ping();
    if (h.abortRequested()) throw TeaError("ERR_ABORTED", "embedding aborted");
    std::vector<llama_token> tokens = Tokenize(vocab, texts_[t], /*addSpecial=*/true, /*parseSpecial=*/true);
    const int32_t n = static_cast<int32_t>(tokens.size());
    if (n == 0) throw TeaError("ERR_INVALID_ARGUMENT", "text " + std::to_string(t) + " produced no tokens");
    if (n > capacity) {
      throw TeaError("ERR_CONTEXT_OVERFLOW", "text " + std::to_string(t) + " has " + std::to_string(n) +
                                                 " tokens but the embedding context holds " + std::to_string(capacity));
    }
    if (llama_memory_t memory = llama_get_memory(ctx)) llama_memory_clear(memory, true);

    llama_batch batch = llama_batch_init(n, 0, 1);
    struct FreeBatch {
      llama_batch& b;
      ~FreeBatch() { llama_batch_free(b); }
    } freeBatch{batch};
    for (int32_t i = 0; i < n; ++i) {
      batch.token[i] = tokens[static_cast<size_t>(i)];
      batch.pos[i] = i;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = true;
    }
    batch.n_tokens = n;
    const int32_t status = encoderOnly ? llama_encode(ctx, batch) : llama_decode(ctx, batch);
    if (h.abortRequested()) throw TeaError("ERR_ABORTED", "embedding aborted");
    if (status != 0) throw TeaError("ERR_DECODE", "llama.cpp failed to compute the embedding (status " + std::to_string(status) + ")");

    const float* pooled = llama_get_embeddings_seq(ctx, 0);
    if (pooled == nullptr) throw TeaError("ERR_INTERNAL", "llama.cpp returned no pooled embedding");
    std::vector<float> v(pooled, pooled + nEmbd);
    if (normalize_) {
      double sum = 0;
      for (float x : v) sum += static_cast<double>(x) * x;
      const double norm = std::sqrt(sum);
      if (norm > 0) {
        for (float& x : v) x = static_cast<float>(x / norm);
      }
    }
    vectors_.push_back(std::move(v));
  }
}

Napi::Value ContextEmbedWorker::Result(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, vectors_.size());
  for (size_t i = 0; i < vectors_.size(); ++i) {
    Napi::Float32Array array = Napi::Float32Array::New(env, vectors_[i].size());
    std::copy(vectors_[i].begin(), vectors_[i].end(), array.Data());
    out.Set(static_cast<uint32_t>(i), array);
  }
  return out;
}

void ContextEmbedWorker::Settled() {
  context_->busy.store(false);
  context_.reset();
}

}  // namespace tea
