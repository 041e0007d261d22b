#include "numeric.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace tea {

namespace {

std::string Meta(const llama_model* model, const std::string& key) {
  char buf[128];
  const int32_t n = llama_model_meta_val_str(model, key.c_str(), buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
}

}  // namespace

std::string NonFiniteMessage(const llama_model* model, const std::string& what) {
  const std::string arch = Meta(model, "general.architecture");
  // Keys whose value makes the computation NaN or Inf when it is zero or negative (rope frequencies: 0^-x; norm
  // epsilons: 1/sqrt(0) on a zero row).
  const std::vector<std::string> positive = {
      arch + ".rope.freq_base",
      arch + ".rope.freq_base_swa",
      arch + ".attention.layer_norm_rms_epsilon",
      arch + ".attention.layer_norm_epsilon",
  };
  std::string found;
  for (const std::string& key : positive) {
    const std::string value = Meta(model, key);
    if (value.empty()) continue;
    char* end = nullptr;
    const double x = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || (std::isfinite(x) && x > 0)) continue;
    found += (found.empty() ? "" : ", ") + key + " = " + value;
  }
  if (!found.empty()) return "NaN/Inf in " + what + ": check " + found + " in the model's metadata";
  return "NaN/Inf in " + what + ": check rope.freq_base, rope scaling and the norm epsilons in the model's metadata, or its weights";
}

}  // namespace tea
