#include "sampler.h"

#include "error.h"
#include "sampling.h"  // llama.cpp common

namespace tea {

void SamplerDeleter::operator()(common_sampler* sampler) const { common_sampler_free(sampler); }

SamplerPtr MakeSampler(const llama_model* model, const SamplingOptions& o, int32_t contextSize) {
  common_params_sampling params;
  params.seed = o.seed;
  params.temp = o.temperature;
  params.top_k = o.topK;
  params.top_p = o.topP;
  params.min_p = o.minP;
  params.penalty_repeat = o.repeatPenalty;
  params.penalty_last_n = o.repeatLastN < 0 ? contextSize : o.repeatLastN;
  params.penalty_freq = o.frequencyPenalty;
  params.penalty_present = o.presencePenalty;
  params.no_perf = true;
  common_sampler* sampler = common_sampler_init(model, params);
  if (sampler == nullptr) throw TeaError("ERR_INVALID_ARGUMENT", "llama.cpp rejected the sampling settings");
  return SamplerPtr(sampler);
}

void AcceptPromptToken(common_sampler* sampler, llama_token token) { common_sampler_accept(sampler, token, false); }

llama_token Sample(common_sampler* sampler, llama_context* ctx, int32_t index) {
  const llama_token token = common_sampler_sample(sampler, ctx, index);
  common_sampler_accept(sampler, token, true);
  return token;
}

}  // namespace tea
