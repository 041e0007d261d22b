// Token layouts of the requests whose prompt llama.cpp's server builds from parts: rerank pairs and infill (fill in
// the middle). The same layouts as llama-server (tools/server, format_prompt_rerank / format_prompt_infill), so the
// same request gives the same tokens. Thread-safe: they only read the model and vocabulary.
#pragma once

#include <string>
#include <vector>

#include "llama.h"
#include "task.h"

namespace tea {

// The tokens of one (query, document) pair for a ranking (classifier) model: the model's "rerank" chat template
// with {query} and {document} filled in when it has one (special tokens parsed, none added), else
// [BOS] query [EOS] [SEP] document [EOS], each special token as the vocabulary adds it (EOS falls back to SEP).
std::vector<llama_token> RerankTokens(const llama_model* model, const std::string& query, const std::string& document);

// True when the vocabulary has the prefix, suffix and middle tokens infill needs.
bool HasFimTokens(const llama_vocab* vocab);
// What is missing, in llama-server's words ("prefix token is missing. ..."), empty when nothing.
std::string MissingFimTokens(const llama_vocab* vocab);

// The infill prompt, FIM repo-level layout: [FIM_REP]myproject\n ([FIM_SEP]filename\n text)* [FIM_SEP]filename\n
// [BOS] [FIM_PRE]prefix prompt [FIM_SUF]suffix [FIM_MID]. The prefix keeps its last 3/4 of a batch, the suffix the
// first quarter less the prompt, and the extra chunks whatever of `contextSize` is left after a batch and twice
// `predict` tokens (their end kept). Throws ERR_INVALID_ARGUMENT without FIM tokens (see MissingFimTokens).
std::vector<llama_token> InfillTokens(const llama_vocab* vocab, const InfillInput& input, int32_t batchSize, int32_t predict,
                                      int32_t contextSize);

}  // namespace tea
