// The log-probabilities of a generation as JavaScript values (lib/native/binding-types.ts NativeTokenLogprob).
#pragma once

#include <napi.h>

#include "task.h"

namespace tea {

Napi::Array LogprobsArray(Napi::Env env, const std::vector<GenerationStats::TokenLogprobs>& entries);

}  // namespace tea
