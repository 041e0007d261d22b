#include "context_complete_worker.h"

#include <algorithm>
#include <chrono>

#include "errors.h"
#include "text_utils.h"

namespace tea {

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct SamplerDeleter {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// llama.cpp's usual order: penalties, then truncation (top-k, top-p, min-p), then temperature and the draw.
SamplerPtr BuildSampler(const CompleteOptions& o, int32_t contextSize, int32_t vocabSize) {
  llama_sampler_chain_params params = llama_sampler_chain_default_params();
  params.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(params));
  if (o.repeatPenalty != 1.0f || o.frequencyPenalty != 0.0f || o.presencePenalty != 0.0f) {
    const int32_t lastN = o.repeatLastN < 0 ? contextSize : o.repeatLastN;
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(vocabSize, lastN, o.repeatPenalty, o.frequencyPenalty, o.presencePenalty));
  }
  if (o.temperature <= 0.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  if (o.topK > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(o.topK));
  if (o.topP < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(o.topP, 1));
  if (o.minP > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(o.minP, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(o.temperature));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(o.seed));
  return chain;
}

// Plain greedy decoding: the index of the first largest logit, exactly what llama.cpp's greedy sampler picks,
// without the sampler chain's copy of the whole vocabulary into a candidate array for every token.
llama_token ArgMax(llama_context* ctx, int32_t vocabSize) {
  const float* logits = llama_get_logits_ith(ctx, -1);
  if (logits == nullptr) throw TeaError("ERR_DECODE", "llama.cpp returned no logits");
  int32_t best = 0;
  for (int32_t i = 1; i < vocabSize; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

}  // namespace

ContextCompleteWorker::ContextCompleteWorker(Napi::Env env, ContextPtr context, std::string prompt, CompleteOptions options,
                                             Napi::Value onChunk, SharedFlag abort)
    : Napi::AsyncWorker(env, "tea-llama:ContextComplete"),
      context_(std::move(context)),
      prompt_(std::move(prompt)),
      options_(std::move(options)),
      abort_(std::move(abort)),
      settlement_(std::make_shared<Settlement>(env)) {
  watch_.emplace(env, abort_);
  settlement_->context = context_;
  if (onChunk.IsFunction()) {
    settlement_->pending = 2;
    std::shared_ptr<Settlement> settlement = settlement_;
    chunks_ = Napi::ThreadSafeFunction::New(env, onChunk.As<Napi::Function>(), "tea-llama:ContextCompleteChunk", 0, 1,
                                            [settlement](Napi::Env finalizeEnv) { SettleOne(finalizeEnv, settlement); });
  }
}

Napi::Promise ContextCompleteWorker::Promise() const { return settlement_->deferred.Promise(); }

void ContextCompleteWorker::Execute() {
  try {
    context_->compute.Run([this] { Generate(); });
  } catch (const TeaError& e) {
    code_ = e.code();
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    code_ = "ERR_OUT_OF_MEMORY";
    SetError("out of memory");
  } catch (const std::exception& e) {
    SetError(e.what());
  } catch (...) {
    SetError("unknown native error");
  }
  context_->activeAbort.store(nullptr);
  context_->activeWatch.store(nullptr);
  watch_->Release();
  // Releasing the last thread lets the queue drain and then run the finalizer, which settles the promise.
  if (chunks_) chunks_->Release();
}

void ContextCompleteWorker::Emit(const std::string& chunk, bool last) {
  result_.text += chunk;
  if (!chunks_) return;
  unsent_ += chunk;
  // Every call wakes the JS thread, which on a small machine takes a core from the decode: at thousands of tokens
  // per second, tokens that come less than kChunkInterval after the last call wait for the next one. A model
  // slower than that gets one call per token, as before; the first chunk is never held.
  const auto now = std::chrono::steady_clock::now();
  if (unsent_.empty() || (!last && now - lastSent_ < kChunkInterval)) return;
  lastSent_ = now;
  auto* data = new std::string(std::move(unsent_));
  unsent_.clear();
  SharedFlag abort = abort_;
  const napi_status status = chunks_->NonBlockingCall(data, [abort](Napi::Env env, Napi::Function fn, std::string* text) {
    std::unique_ptr<std::string> owned(text);
    if (env == nullptr) return;
    try {
      fn.Call({Napi::String::New(env, *owned)});
    } catch (const Napi::Error&) {
      // The TS layer catches callback errors itself; a throw that still gets here stops the generation.
      abort->store(true);
    }
  });
  if (status != napi_ok) delete data;
}

void ContextCompleteWorker::Generate() {
  ContextHandle& h = *context_;
  h.activeAbort.store(abort_.get());
  h.activeWatch.store(&*watch_);
  llama_context* ctx = h.ctx;
  const llama_vocab* vocab = h.model->vocab();
  const int32_t nCtx = static_cast<int32_t>(h.limit);
  const int32_t nBatch = static_cast<int32_t>(llama_n_batch(ctx));

  std::vector<llama_token> prompt = Tokenize(vocab, prompt_, /*addSpecial=*/true, /*parseSpecial=*/true);
  if (prompt.empty()) throw TeaError("ERR_INVALID_ARGUMENT", "the prompt is empty and the model adds no BOS token");
  const int32_t nPrompt = static_cast<int32_t>(prompt.size());
  result_.promptTokens = nPrompt;
  if (nPrompt >= nCtx) {
    throw TeaError("ERR_CONTEXT_OVERFLOW", "the prompt has " + std::to_string(nPrompt) + " tokens but the context holds " +
                                               std::to_string(nCtx) + ": shorten it or raise contextSize");
  }

  // Reuse the KV entries of the longest common prefix with the previous request (chat turns, repeated prompts);
  // at least the last prompt token is decoded again so its logits exist.
  llama_memory_t memory = llama_get_memory(ctx);
  size_t keep = 0;
  const size_t common = std::min(h.cachedTokens.size(), prompt.size() - 1);
  while (keep < common && h.cachedTokens[keep] == prompt[keep]) ++keep;
  // A one-token match is just the BOS that every prompt starts with. Reusing it saves one token but starts the new
  // tokens at position 1, where the flash-attention tiles straddle the causal diagonal: llama-bench measures
  // pp127 at depth 1 6-8% slower than at depth 0 on stories260K. Recompute it from an empty cache instead.
  if (keep == 1) keep = 0;
  if (!llama_memory_seq_rm(memory, 0, static_cast<llama_pos>(keep), -1)) {
    llama_memory_clear(memory, true);
    keep = 0;
  }
  h.cachedTokens.resize(keep);
  result_.reusedPromptTokens = static_cast<int32_t>(keep);

  const auto started = Clock::now();
  for (size_t i = keep; i < prompt.size(); i += static_cast<size_t>(nBatch)) {
    watch_->Ping();
    const int32_t count = static_cast<int32_t>(std::min(prompt.size() - i, static_cast<size_t>(nBatch)));
    const int32_t status = llama_decode(ctx, llama_batch_get_one(prompt.data() + i, count));
    if (status != 0) {
      // Partly decoded state is unknown: start from scratch next time.
      h.cachedTokens.clear();
      llama_memory_clear(memory, true);
      if (status == 2 || h.abortRequested()) {
        result_.finishReason = "abort";
        result_.promptMs = MsSince(started);
        return;
      }
      throw TeaError("ERR_DECODE", "llama_decode failed on the prompt (status " + std::to_string(status) + ")");
    }
    h.cachedTokens.insert(h.cachedTokens.end(), prompt.begin() + static_cast<std::ptrdiff_t>(i),
                          prompt.begin() + static_cast<std::ptrdiff_t>(i) + count);
  }
  result_.promptMs = MsSince(started);

  const int32_t vocabSize = llama_vocab_n_tokens(vocab);
  const bool penalties = options_.repeatPenalty != 1.0f || options_.frequencyPenalty != 0.0f || options_.presencePenalty != 0.0f;
  const bool plainGreedy = options_.temperature <= 0.0f && !penalties;
  SamplerPtr sampler = plainGreedy ? nullptr : BuildSampler(options_, nCtx, vocabSize);
  if (penalties) {
    for (llama_token t : prompt) llama_sampler_accept(sampler.get(), t);
  }

  const std::vector<std::string>& stops = options_.stop;
  std::string held;  // generated text not yet emitted: a possible stop-string prefix or a partial UTF-8 character
  const auto generationStarted = Clock::now();
  int32_t position = nPrompt;
  while (true) {
    watch_->Ping();
    if (h.abortRequested()) {
      result_.finishReason = "abort";
      break;
    }
    if (options_.maxTokens >= 0 && result_.completionTokens >= options_.maxTokens) {
      result_.finishReason = "length";
      break;
    }
    if (position >= nCtx) {
      result_.finishReason = "length";
      result_.contextFull = true;
      break;
    }
    const llama_token token = plainGreedy ? ArgMax(ctx, vocabSize) : llama_sampler_sample(sampler.get(), ctx, -1);
    if (result_.completionTokens == 0) result_.firstTokenMs = MsSince(started);
    if (llama_vocab_is_eog(vocab, token)) {
      result_.finishReason = "stop";
      break;
    }
    ++result_.completionTokens;
    held += TokenToPiece(vocab, token, /*special=*/false);

    if (!stops.empty()) {
      const size_t at = FindStop(held, stops, 0);
      if (at != std::string::npos) {
        held.resize(at);
        result_.finishReason = "stop";
        break;
      }
    }
    const size_t hold = std::max(PartialStopSuffix(held, stops), IncompleteUtf8Tail(held));
    if (held.size() > hold) {
      Emit(held.substr(0, held.size() - hold), /*last=*/false);
      held.erase(0, held.size() - hold);
    }
    if (options_.maxTokens >= 0 && result_.completionTokens >= options_.maxTokens) {
      result_.finishReason = "length";
      break;  // no need to decode a token nothing will follow
    }

    llama_token next = token;
    const int32_t status = llama_decode(ctx, llama_batch_get_one(&next, 1));
    if (status != 0) {
      if (status == 2 || h.abortRequested()) {
        h.cachedTokens.clear();
        llama_memory_clear(memory, true);
        result_.finishReason = "abort";
        break;
      }
      if (status == 1) {  // no KV slot left
        result_.finishReason = "length";
        result_.contextFull = true;
        break;
      }
      h.cachedTokens.clear();
      llama_memory_clear(memory, true);
      throw TeaError("ERR_DECODE", "llama_decode failed during generation (status " + std::to_string(status) + ")");
    }
    h.cachedTokens.push_back(token);
    ++position;
  }
  Emit(held, /*last=*/true);
  result_.generationMs = MsSince(generationStarted);
}

void ContextCompleteWorker::OnOK() {
  settlement_->result = std::move(result_);
  SettleOne(Env(), settlement_);
}

void ContextCompleteWorker::OnError(const Napi::Error& error) {
  settlement_->failed = true;
  settlement_->code = code_;
  settlement_->message = error.Message();
  SettleOne(Env(), settlement_);
}

void ContextCompleteWorker::SettleOne(Napi::Env env, const std::shared_ptr<Settlement>& s) {
  if (--s->pending > 0) return;
  s->context->busy.store(false);
  s->context.reset();
  // The chunk queue's finalizer also runs while a worker thread's environment is torn down (worker.terminate()
  // during a generation), when no JavaScript can run and every N-API call fails: a Napi::Error escaping a
  // finalizer is std::terminate. Nobody is left to receive the result then.
  try {
    Napi::HandleScope scope(env);
    Settle(env, *s);
  } catch (const Napi::Error&) {
  }
}

void ContextCompleteWorker::Settle(Napi::Env env, const Settlement& s) {
  if (s.failed) {
    s.deferred.Reject(MakeError(env, s.code, s.message).Value());
    return;
  }
  const CompletionResult& r = s.result;
  Napi::Object out = Napi::Object::New(env);
  out.Set("text", Napi::String::New(env, r.text));
  out.Set("promptTokens", r.promptTokens);
  out.Set("reusedPromptTokens", r.reusedPromptTokens);
  out.Set("completionTokens", r.completionTokens);
  out.Set("finishReason", r.finishReason);
  out.Set("contextFull", r.contextFull);
  Napi::Object timings = Napi::Object::New(env);
  timings.Set("promptMs", r.promptMs);
  timings.Set("generationMs", r.generationMs);
  timings.Set("firstTokenMs", r.firstTokenMs);
  out.Set("timings", timings);
  s.deferred.Resolve(out);
}

}  // namespace tea
