// Non-finite model output (NaN/Inf embeddings or logits) as ERR_NUMERIC, naming the metadata most likely at fault.
// A GGUF with `rope.freq_base = 0`, a zero norm epsilon or similar computes NaN everywhere without llama.cpp
// noticing. Thread-safe: only reads the model's metadata.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include "llama.h"

namespace tea {

inline bool AllFinite(const float* values, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) return false;
  }
  return true;
}

// "<what> contains NaN/Inf: check ..." with the suspicious metadata keys of this model (and their values) when
// any is out of range, else the usual suspects.
std::string NonFiniteMessage(const llama_model* model, const std::string& what);

}  // namespace tea
