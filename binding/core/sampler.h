// A request's sampler: llama.cpp's common_sampler (the chain llama-server builds) from our SamplingOptions.
// Used by the scheduler thread only.
#pragma once

#include <memory>

#include "llama.h"
#include "task.h"

struct common_sampler;

namespace tea {

struct SamplerDeleter {
  void operator()(common_sampler* sampler) const;
};
using SamplerPtr = std::unique_ptr<common_sampler, SamplerDeleter>;

// Throws ERR_INVALID_ARGUMENT when llama.cpp rejects the settings.
SamplerPtr MakeSampler(const llama_model* model, const SamplingOptions& options, int32_t contextSize);
// Prompt tokens feed the repetition penalties' history, as llama-server does.
void AcceptPromptToken(common_sampler* sampler, llama_token token);
// Samples from the logits at batch index `index` and accepts the token.
llama_token Sample(common_sampler* sampler, llama_context* ctx, int32_t index);

}  // namespace tea
