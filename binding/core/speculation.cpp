#include "speculation.h"

#include <algorithm>

#include "common.h"       // llama.cpp common
#include "error.h"
#include "log.h"
#include "sampling.h"     // llama.cpp common
#include "speculative.h"  // llama.cpp common

namespace tea {

namespace {

bool CanDropTokens(const llama_model* model) { return !llama_model_is_recurrent(model) && !llama_model_is_hybrid(model); }

}  // namespace

int32_t Speculation::OutputsPerSequence(const SpeculativeOptions& o, bool hasDraftModel) {
  int32_t n = 0;
  if (hasDraftModel) n = std::max(n, o.draftMax);
  if (o.ngram) n = std::max(n, o.ngramMax);
  return 1 + n;
}

Speculation::Speculation(llama_context* target, llama_context* draft, std::shared_ptr<const void> keepAlive, const SpeculativeOptions& o,
                         int32_t sequences)
    : draft_(draft), keepAlive_(std::move(keepAlive)) {
  // Freed here on a throw: the caller handed the draft context over.
  struct Guard {
    Speculation* self;
    bool armed = true;
    ~Guard() {
      if (armed && self->draft_ != nullptr) llama_free(self->draft_);
    }
  } guard{this};

  // As llama-server: partial acceptance drops the rejected tokens' cells, which a recurrent state cannot (it would
  // need checkpoints of the whole state per step).
  if (!CanDropTokens(llama_get_model(target)) || (draft_ != nullptr && !CanDropTokens(llama_get_model(draft_)))) {
    throw TeaError("ERR_INVALID_ARGUMENT", "speculative decoding needs models whose memory can drop tokens: recurrent and hybrid models cannot");
  }
  common_params_speculative params;
  params.types.clear();
  if (o.ngram) {
    params.types.push_back(COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE);
    params.ngram_simple.size_n = static_cast<uint16_t>(o.ngramSize);
    params.ngram_simple.size_m = static_cast<uint16_t>(o.ngramMax);
  }
  if (draft_ != nullptr) {
    params.types.push_back(COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE);
    params.draft.n_max = o.draftMax;
    params.draft.n_min = o.draftMin;
    params.draft.p_min = o.draftPMin;
    params.draft.ctx_tgt = target;
    params.draft.ctx_dft = draft_;
  }
  if (params.types.empty()) throw TeaError("ERR_INVALID_ARGUMENT", "speculative decoding needs a draft model or n-gram drafting");
  TakeLastError();
  try {
    spec_ = common_speculative_init(params, static_cast<uint32_t>(sequences));
  } catch (const std::bad_alloc&) {
    throw TeaError("ERR_OUT_OF_MEMORY", "out of memory while setting up speculative decoding");
  } catch (const std::exception& e) {
    // llama.cpp's compatibility check (vocabulary type, BOS/EOS, size and token texts) throws this one message and
    // logs the reason.
    const std::string what = e.what();
    if (what.find("vocab") != std::string::npos) {
      const std::string reason = TakeLastError();
      throw TeaError("ERR_DRAFT_INCOMPATIBLE", "the draft model cannot draft for this model: " + what + (reason.empty() ? "" : " (" + reason + ")"));
    }
    throw TeaError("ERR_INVALID_ARGUMENT", "llama.cpp could not set up speculative decoding: " + what);
  }
  if (spec_ == nullptr) throw TeaError("ERR_INVALID_ARGUMENT", "llama.cpp set up no speculative decoding for these options");
  maxDraft_ = common_speculative_n_max(spec_);
  guard.armed = false;
}

Speculation::~Speculation() {
  common_speculative_free(spec_);
  if (draft_ != nullptr) llama_free(draft_);
}

void Speculation::Begin(llama_seq_id seq, const std::vector<llama_token>& tokens) { common_speculative_begin(spec_, seq, tokens); }

void Speculation::Request(llama_seq_id seq, llama_pos pos, llama_token last, const std::vector<llama_token>* history,
                          std::vector<llama_token>* out, int32_t nMax) {
  out->clear();
  common_speculative_get_draft_params(spec_, seq) = {
      /* .drafting = */ true,
      /* .n_max    = */ nMax,
      /* .pos0     = */ pos,
      /* .id_last  = */ last,
      /* .prompt   = */ history,
      /* .result   = */ out,
  };
  requested_.emplace_back(seq, pos);
}

void Speculation::Draft() {
  if (requested_.empty()) return;
  common_speculative_draft(spec_);
  // Drafting decoded the sampled token and the draft on the draft context: the target's batch brings them back.
  for (const auto& [seq, pos] : requested_) Remove(seq, pos, -1);
  requested_.clear();
}

bool Speculation::Process(const llama_batch& batch) { return common_speculative_process(spec_, batch); }

void Speculation::Accept(llama_seq_id seq, int32_t accepted) { common_speculative_accept(spec_, seq, static_cast<uint16_t>(accepted)); }

void Speculation::Remove(llama_seq_id seq, llama_pos p0, llama_pos p1) {
  // Never refused: only recurrent memory refuses a partial removal, and the constructor turned those away.
  if (draft_ != nullptr) llama_memory_seq_rm(llama_get_memory(draft_), seq, p0, p1);
}

std::vector<llama_token> VerifyDraft(common_sampler* sampler, llama_context* ctx, int32_t first, const std::vector<llama_token>& draft) {
  std::vector<int> indices(draft.size() + 1);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = first + static_cast<int>(i);
  return common_sampler_sample_and_accept_n(sampler, ctx, indices, draft);
}

}  // namespace tea
