#include "lora.h"

#include <algorithm>
#include <functional>

#include "error.h"
#include "log.h"
#include "text_utils.h"

namespace tea {

std::shared_ptr<LoraAdapter> LoraAdapter::Load(llama_model* model, std::shared_ptr<const void> keepAlive, std::mutex* registry,
                                               const std::string& path) {
  std::shared_ptr<LoraAdapter> out(new LoraAdapter());
  out->model_ = model;
  out->registry_ = registry;
  out->keepAlive_ = std::move(keepAlive);
  {
    std::lock_guard<std::mutex> lock(*registry);
    TakeLastError();
    out->adapter_ = llama_adapter_lora_init(model, path.c_str());
  }
  if (out->adapter_ == nullptr) {
    const std::string reason = TakeLastError();
    throw TeaError("ERR_LORA_INVALID", "llama.cpp cannot use " + path + " as a LoRA adapter of this model" + (reason.empty() ? "" : ": " + reason));
  }
  // An activated LoRA (aLoRA) applies only from its invocation tokens on, which llama-server tracks per slot; as a
  // plain adapter it would give other answers than llama-server's, so it is refused rather than misapplied.
  if (llama_adapter_get_alora_n_invocation_tokens(out->adapter_) > 0) {
    throw TeaError("ERR_LORA_INVALID", path + " is an activated LoRA (aLoRA), which tea-llama does not support");
  }
  const std::string alpha = ReadString([&](char* buf, size_t size) { return llama_adapter_meta_val_str(out->adapter_, "adapter.lora.alpha", buf, size); });
  try {
    out->alpha_ = alpha.empty() ? 0.0f : std::stof(alpha);
  } catch (...) {
    out->alpha_ = 0.0f;
  }
  return out;
}

LoraAdapter::~LoraAdapter() {
  if (adapter_ == nullptr) return;
  std::lock_guard<std::mutex> lock(*registry_);
  llama_adapter_lora_free(adapter_);
}

LoraConfig Canonical(LoraConfig config) {
  LoraConfig out;
  // The last entry of an adapter wins: walk backwards and keep the first seen.
  for (auto it = config.rbegin(); it != config.rend(); ++it) {
    if (!it->adapter) continue;
    const bool seen = std::any_of(out.begin(), out.end(), [&](const LoraScale& s) { return s.adapter == it->adapter; });
    if (!seen) out.push_back(std::move(*it));
  }
  out.erase(std::remove_if(out.begin(), out.end(), [](const LoraScale& s) { return s.scale == 0.0f; }), out.end());
  std::sort(out.begin(), out.end(), [](const LoraScale& a, const LoraScale& b) { return std::less<const LoraAdapter*>()(a.adapter.get(), b.adapter.get()); });
  return out;
}

bool SameLora(const LoraConfig& a, const LoraConfig& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].adapter != b[i].adapter || a[i].scale != b[i].scale) return false;
  }
  return true;
}

LoraKey LoraKey::Of(const LoraConfig& config) {
  LoraKey key;
  for (const LoraScale& s : config) key.entries.emplace_back(s.adapter, s.scale);
  return key;
}

bool LoraKey::Matches(const LoraConfig& config) const {
  if (entries.size() != config.size()) return false;
  for (size_t i = 0; i < config.size(); ++i) {
    const auto& [weak, scale] = entries[i];
    // Owner equality: the same control block, which cannot be reused while `weak` exists.
    if (scale != config[i].scale || weak.owner_before(config[i].adapter) || config[i].adapter.owner_before(weak)) return false;
  }
  return true;
}

void ApplyLora(llama_context* ctx, const LoraConfig& config) {
  std::vector<llama_adapter_lora*> adapters;
  std::vector<float> scales;
  for (const LoraScale& s : config) {
    adapters.push_back(s.adapter->get());
    scales.push_back(s.scale);
  }
  llama_set_adapters_lora(ctx, adapters.empty() ? nullptr : adapters.data(), adapters.size(), scales.empty() ? nullptr : scales.data());
}

}  // namespace tea
