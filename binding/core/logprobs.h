// Log-probabilities of generated tokens, as llama-server reports them for n_probs without post_sampling_probs:
// the softmax of the position's raw logits (before any sampler), the sampled token's and the top N by logit.
// Plain functions of their arguments; used by the scheduler thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"
#include "task.h"

namespace tea {

// `sampledSpecial`: render the sampled token's piece with special tokens as text (as the output renders it);
// the alternatives never are (llama-server's default `special` = false).
GenerationStats::TokenLogprobs TokenLogprobsAt(const llama_vocab* vocab, const float* logits, int32_t nVocab, llama_token sampled,
                                               int32_t top, bool sampledSpecial);

// The entries a stopped generation keeps: llama-server drops as many trailing entries as the stop string has
// tokens (it never returns the stop string's own probabilities).
void TrimStopLogprobs(const llama_vocab* vocab, const std::string& stopWord, std::vector<GenerationStats::TokenLogprobs>& entries);

}  // namespace tea
