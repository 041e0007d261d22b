// What the scheduler is asked to do (tasks) and what it answers (events). Plain data, no llama.cpp state.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"

namespace tea {

// Sampling settings of one request, as llama.cpp's common_params_sampling takes them. Defaults are llama.cpp's
// except temperature, which the TypeScript request model always sets.
struct SamplingOptions {
  float temperature = 0.7f;
  int32_t topK = 40;
  float topP = 0.95f;
  float minP = 0.05f;
  float repeatPenalty = 1.0f;
  int32_t repeatLastN = 64;
  float frequencyPenalty = 0.0f;
  float presencePenalty = 0.0f;
  uint32_t seed = LLAMA_DEFAULT_SEED;
  // The rest of llama-server's sampling fields (tools/server/server-schema.cpp), with common_params_sampling's
  // defaults.
  float typicalP = 1.0f;
  float dynatempRange = 0.0f;
  float dynatempExponent = 1.0f;
  float topNSigma = -1.0f;
  float xtcProbability = 0.0f;
  float xtcThreshold = 0.1f;
  int32_t mirostat = 0;  // 0 off, 1 Mirostat, 2 Mirostat 2.0
  float mirostatTau = 5.0f;
  float mirostatEta = 0.1f;
  float dryMultiplier = 0.0f;
  float dryBase = 1.75f;
  int32_t dryAllowedLength = 2;
  int32_t dryPenaltyLastN = 64;  // -1: the whole context
  std::vector<std::string> drySequenceBreakers = {"\n", ":", "\"", "*"};
  std::vector<std::string> samplers;  // chain order by llama.cpp's names; empty: llama.cpp's default order
  struct LogitBias {
    int32_t token = -1;  // a token id, or -1 for `text`: every token of its tokenization (as llama-server)
    std::string text;
    float bias = 0.0f;   // -INFINITY bans
  };
  std::vector<LogitBias> logitBias;
  bool ignoreEos = false;  // bans every end-of-generation token (llama-server's logit_bias_eog)
  int32_t minKeep = 0;
  // Log-probabilities of each generated token (from the logits before sampling, as llama-server's n_probs without
  // post_sampling_probs) and of its `topLogprobs` most likely alternatives.
  bool logprobs = false;
  int32_t topLogprobs = 0;

  bool penalties() const { return repeatPenalty != 1.0f || frequencyPenalty != 0.0f || presencePenalty != 0.0f; }
  // Samplers that read the token history (llama-server feeds them the prompt).
  bool usesHistory() const { return penalties() || dryMultiplier != 0.0f; }
  // Plain greedy: the argmax of the logits is exactly llama.cpp's greedy pick, without a sampler chain. Anything
  // that changes the logits before the temperature step (penalties, DRY, biases, XTC's removals) or a custom order
  // (which may leave the temperature out) needs the chain.
  bool plainGreedy() const {
    return temperature <= 0.0f && !penalties() && dryMultiplier == 0.0f && xtcProbability == 0.0f && logitBias.empty() && !ignoreEos &&
           samplers.empty();
  }
};

// Constrained output of one request, as llama.cpp's common_params_sampling takes it (the fields llama-server
// fills from a request and from common_chat_templates_apply's result).
struct GrammarOptions {
  enum class Kind { User, OutputFormat, ToolCalls };  // common_grammar_type: only the last two are prefilled
  std::string grammar;          // GBNF; empty: none (unless jsonSchema)
  std::string jsonSchema;       // JSON Schema text, converted to GBNF by llama.cpp when the task is admitted
  Kind kind = Kind::User;
  bool lazy = false;            // apply only once a trigger appears
  struct Trigger {
    int32_t type = 1;           // common_grammar_trigger_type: 0 token, 1 word, 2 pattern, 3 full pattern
    std::string value;
  };
  std::vector<Trigger> triggers;
  std::vector<std::string> preservedTokens;  // texts of single tokens rendered as text (tool-call markup)
  std::string generationPrompt;              // the assistant prefix the template put at the prompt's end

  bool empty() const { return grammar.empty() && jsonSchema.empty(); }
};

struct GenerationTask {
  uint64_t id = 0;
  std::string prompt;          // tokenized on the scheduler thread, with BOS/EOS and special-token parsing
  int32_t maxTokens = 100;     // -1: until the sequence's context is full
  std::vector<std::string> stop;
  SamplingOptions sampling;
  bool stream = false;         // emit text events as it is generated (the done event always carries the text)
  GrammarOptions grammar;
};

struct EmbeddingTask {
  uint64_t id = 0;
  std::vector<std::string> texts;
  bool normalize = true;
};

struct GenerationStats {
  std::string text;
  int32_t promptTokens = 0;
  int32_t reusedPromptTokens = 0;
  int32_t completionTokens = 0;
  std::string finishReason = "stop";  // stop | length | abort
  bool contextFull = false;
  double queuedMs = 0;      // submit to admission into a slot
  double promptMs = 0;      // admission to the first sampled token
  double generationMs = 0;  // first sampled token to the end
  double firstTokenMs = 0;  // submit to the first sampled token
  int32_t slot = -1;        // the sequence that ran it
  // With SamplingOptions::logprobs: one entry per generated token, as llama-server's completion_probabilities.
  struct TokenProb {
    int32_t token = -1;
    std::string piece;
    float logprob = 0.0f;
  };
  struct TokenLogprobs {
    TokenProb sampled;
    std::vector<TokenProb> top;
  };
  std::vector<TokenLogprobs> logprobs;
};

// One event for JavaScript. Text events of the same request that are waiting together are merged.
struct Event {
  enum class Kind { Text, Done, Error, Embeddings };
  uint64_t id = 0;
  Kind kind = Kind::Text;
  std::string text;                          // Text
  GenerationStats stats;                     // Done
  std::string code, message;                 // Error
  std::vector<std::vector<float>> vectors;   // Embeddings
};

// Where a scheduler sends its events. Called on the scheduler thread (and by Cancel on the caller's thread), once
// per scheduler step with everything that step produced; an implementation must not block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Publish(std::vector<Event>&& events) = 0;
};

}  // namespace tea
