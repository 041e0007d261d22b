// Speculation: the drafting side of speculative decoding for one Scheduler, through llama.cpp's common/speculative
// (the implementations llama-server runs per slot): a draft model ("draft-simple") and/or prompt lookup over the
// sequence's own tokens ("ngram-simple"). The target model verifies every draft in the scheduler's batch, so the
// output is the target's own.
//
// A draft model keeps a context of its own whose KV cache mirrors the target's, sequence for sequence: every batch
// the target decodes is decoded on it too (Process), and every cell the target drops is dropped there (Remove).
//
// Threads: the constructor runs on the thread that creates the scheduler's context (before the scheduler thread
// starts); every other method, and the destructor, on the scheduler thread.
#pragma once

#include <memory>
#include <vector>

#include "llama.h"

struct common_speculative;
struct common_sampler;

namespace tea {

struct SpeculativeOptions {
  // Draft model: llama-server's --spec-draft-n-max / -n-min / -p-min, with llama.cpp's defaults.
  int32_t draftMax = 3;
  int32_t draftMin = 0;
  float draftPMin = 0.0f;
  // Prompt lookup (ngram-simple): --spec-ngram-simple-size-n / -size-m, with llama.cpp's defaults.
  bool ngram = false;
  int32_t ngramSize = 12;
  int32_t ngramMax = 48;
};

class Speculation {
 public:
  // `target` is the scheduler's context; `draft` (owned from here on, may be null for n-gram drafting alone) a
  // context of the draft model with the target's n_ctx, n_batch and n_seq_max; `keepAlive` keeps the draft model
  // alive. Throws ERR_DRAFT_INCOMPATIBLE when llama.cpp finds the vocabularies incompatible, ERR_INVALID_ARGUMENT
  // when nothing would draft or a model's memory cannot drop tokens (recurrent models).
  Speculation(llama_context* target, llama_context* draft, std::shared_ptr<const void> keepAlive, const SpeculativeOptions& options,
              int32_t sequences);
  ~Speculation();
  Speculation(const Speculation&) = delete;
  Speculation& operator=(const Speculation&) = delete;

  // Most tokens one draft may have (the largest of the implementations').
  int32_t maxDraft() const { return maxDraft_; }
  // Outputs per sequence in one target batch: the sampled token and its draft.
  static int32_t OutputsPerSequence(const SpeculativeOptions& options, bool hasDraftModel);

  // A sequence starts generating after its prompt: `tokens` is everything it holds.
  void Begin(llama_seq_id seq, const std::vector<llama_token>& tokens);
  // Asks for a draft of at most `nMax` tokens for `seq`, whose tokens so far are `history` and whose sampled, not
  // yet decoded token `last` goes at position `pos`; the draft lands in `out` at the next Draft().
  void Request(llama_seq_id seq, llama_pos pos, llama_token last, const std::vector<llama_token>* history, std::vector<llama_token>* out,
               int32_t nMax);
  // Drafts for every sequence requested since the last call, at once (one draft-model batch per drafted position),
  // then drops from the draft context what drafting wrote past each requested position.
  void Draft();
  // Decodes the target's batch on the draft context (false: the draft model failed to decode it).
  bool Process(const llama_batch& batch);
  // Tells the implementations how many drafted tokens the target accepted.
  void Accept(llama_seq_id seq, int32_t accepted);
  // Drops cells of `seq` from the draft context, as llama_memory_seq_rm (the scheduler dropped them from its own).
  void Remove(llama_seq_id seq, llama_pos p0, llama_pos p1);

 private:
  llama_context* draft_;
  std::shared_ptr<const void> keepAlive_;
  common_speculative* spec_ = nullptr;
  int32_t maxDraft_ = 0;
  std::vector<std::pair<llama_seq_id, llama_pos>> requested_;
};

// Verifies a draft with llama.cpp's common_sampler_sample_and_accept_n over batch indices first .. first + draft
// size: the drafted tokens the model agrees with, then the token it samples after them (at least one token).
std::vector<llama_token> VerifyDraft(common_sampler* sampler, llama_context* ctx, int32_t first, const std::vector<llama_token>& draft);

}  // namespace tea
