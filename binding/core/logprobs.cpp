#include "logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "text_utils.h"

namespace tea {

namespace {

// log(p), with a zero probability as the lowest float rather than -inf (what llama-server sends: JSON has no -inf).
float LogOf(float p) { return p == 0.0f ? std::numeric_limits<float>::lowest() : std::log(p); }

}  // namespace

GenerationStats::TokenLogprobs TokenLogprobsAt(const llama_vocab* vocab, const float* logits, int32_t nVocab, llama_token sampled,
                                               int32_t top, bool sampledSpecial) {
  std::vector<llama_token_data> cur(static_cast<size_t>(nVocab));
  for (int32_t i = 0; i < nVocab; ++i) cur[static_cast<size_t>(i)] = {i, logits[i], 0.0f};
  const size_t nTop = std::min(cur.size(), static_cast<size_t>(std::max(top, 0)));
  if (nTop > 0) {
    std::partial_sort(cur.begin(), cur.begin() + static_cast<std::ptrdiff_t>(nTop), cur.end(),
                      [](const llama_token_data& a, const llama_token_data& b) { return a.logit > b.logit; });
  }
  // The softmax in float, as llama-server computes it, so the values agree to float rounding.
  float maxLogit = -std::numeric_limits<float>::infinity();
  for (const llama_token_data& t : cur) maxLogit = std::max(maxLogit, t.logit);
  float sum = 0.0f;
  for (llama_token_data& t : cur) {
    t.p = std::exp(t.logit - maxLogit);
    sum += t.p;
  }
  for (llama_token_data& t : cur) t.p /= sum;

  GenerationStats::TokenLogprobs out;
  out.sampled.token = sampled;
  out.sampled.piece = TokenToPiece(vocab, sampled, sampledSpecial);
  out.sampled.logprob = LogOf(cur[0].p);
  for (const llama_token_data& t : cur) {
    if (t.id == sampled) {
      out.sampled.logprob = LogOf(t.p);
      break;
    }
  }
  out.top.reserve(nTop);
  for (size_t i = 0; i < nTop; ++i) out.top.push_back({cur[i].id, TokenToPiece(vocab, cur[i].id, false), LogOf(cur[i].p)});
  return out;
}

void TrimStopLogprobs(const llama_vocab* vocab, const std::string& stopWord, std::vector<GenerationStats::TokenLogprobs>& entries) {
  if (stopWord.empty()) return;
  const size_t n = Tokenize(vocab, stopWord, /*addSpecial=*/false, /*parseSpecial=*/false).size();
  entries.resize(entries.size() - std::min(entries.size(), n));
}

}  // namespace tea
