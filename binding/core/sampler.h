// A request's sampler: llama.cpp's common_sampler (the chain llama-server builds) from our SamplingOptions and
// GrammarOptions. Used by the scheduler thread only.
#pragma once

#include <memory>
#include <cstddef>
#include <set>
#include <string>

#include "llama.h"
#include "task.h"

struct common_sampler;

namespace tea {

struct SamplerDeleter {
  void operator()(common_sampler* sampler) const;
};
using SamplerPtr = std::unique_ptr<common_sampler, SamplerDeleter>;

// Largest grammar accepted (lib/engine/structured.ts MAX_GRAMMAR_BYTES, which explains it).
constexpr size_t kMaxGrammarBytes = 128 * 1024;

// The GBNF of a JSON Schema, by llama.cpp's json_schema_to_grammar. Throws ERR_INVALID_SCHEMA with its message.
std::string SchemaToGrammar(const std::string& schemaJson);

// Throws ERR_INVALID_ARGUMENT when llama.cpp rejects the settings, ERR_INVALID_GRAMMAR (with llama.cpp's parse
// error) for a grammar it cannot parse, ERR_INVALID_SCHEMA for a schema it cannot convert. `preserved` receives
// the ids of the grammar's preserved tokens (rendered as text, as llama-server renders them).
SamplerPtr MakeSampler(const llama_model* model, const SamplingOptions& options, const GrammarOptions& grammar, int32_t contextSize,
                       std::set<llama_token>* preserved);
// Prompt tokens feed the repetition penalties' history, as llama-server does.
void AcceptPromptToken(common_sampler* sampler, llama_token token);
// Samples from the logits at batch index `index` and accepts the token.
llama_token Sample(common_sampler* sampler, llama_context* ctx, int32_t index);

}  // namespace tea
