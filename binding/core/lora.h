// LoRA adapters: ownership of one llama_adapter_lora, and the per-request set of adapters with scales that the
// scheduler applies to its context (llama_set_adapters_lora) for the slots of one batch.
//
// Threads: LoraAdapter::Load runs on a pool thread; the destructor on whichever thread drops the last share (the
// JS main thread, a pool thread or a scheduler thread). Both take the model's adapter mutex: llama.cpp keeps a
// model's adapters in a plain std::set that llama_adapter_lora_init and _free both modify.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama.h"

namespace tea {

class LoraAdapter {
 public:
  // Loads `path` for `model` (llama_adapter_lora_init). `keepAlive` owns the model and `registry` (its adapter
  // mutex): the adapter must be freed before the model. Throws ERR_LORA_INVALID with llama.cpp's reason when the
  // file is not an adapter of this model.
  static std::shared_ptr<LoraAdapter> Load(llama_model* model, std::shared_ptr<const void> keepAlive, std::mutex* registry,
                                           const std::string& path);
  ~LoraAdapter();
  LoraAdapter(const LoraAdapter&) = delete;
  LoraAdapter& operator=(const LoraAdapter&) = delete;

  llama_adapter_lora* get() const { return adapter_; }
  const llama_model* model() const { return model_; }
  float alpha() const { return alpha_; }

 private:
  LoraAdapter() = default;

  llama_adapter_lora* adapter_ = nullptr;
  const llama_model* model_ = nullptr;
  std::mutex* registry_ = nullptr;
  float alpha_ = 0;
  std::shared_ptr<const void> keepAlive_;  // last: released after the adapter is freed
};
using LoraPtr = std::shared_ptr<LoraAdapter>;

struct LoraScale {
  LoraPtr adapter;
  float scale = 1.0f;
};

// The adapters of one request. Canonical (see Canonical): zero scales dropped, one entry per adapter, ordered by
// address, so that two configurations are equal exactly when their vectors are.
using LoraConfig = std::vector<LoraScale>;

// Drops zero scales, merges repeated adapters (the last scale wins, as a JSON object's keys in llama-server's
// parse_lora_request) and sorts.
LoraConfig Canonical(LoraConfig config);
bool SameLora(const LoraConfig& a, const LoraConfig& b);

// What a sequence's KV cells were computed under: weak references, so an idle slot does not keep a disposed
// adapter's memory, yet a freed adapter's address taken by a new one never matches (the control block lives on).
struct LoraKey {
  std::vector<std::pair<std::weak_ptr<LoraAdapter>, float>> entries;

  static LoraKey Of(const LoraConfig& config);
  bool Matches(const LoraConfig& config) const;
};

// Sets `config` on `ctx` (a no-op in llama.cpp when it is already set). Scheduler thread.
void ApplyLora(llama_context* ctx, const LoraConfig& config);

}  // namespace tea
