#include "numeric.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "text_utils.h"

namespace tea {

std::string NonFiniteMessage(const llama_model* model, const std::string& what) {
  const std::string arch = MetaString(model, "general.architecture");
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
    const std::string value = MetaString(model, key.c_str());
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
