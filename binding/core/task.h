// What the scheduler is asked to do (tasks) and what it answers (events). Plain data, no llama.cpp state (a task
// holds shares of the LoRA adapters it runs with, so they outlive it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama.h"
#include "lora.h"

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

// A fill-in-the-middle request: the prompt is built from these with the model's FIM tokens (prompt_format.h).
struct InfillInput {
  std::string prefix, suffix;
  std::string prompt;  // text after the prefix, before the middle (llama-server's `prompt`)
  struct Chunk {
    std::string filename, text;
  };
  std::vector<Chunk> extra;  // other files of the project, before the prefix
};

struct GenerationTask {
  uint64_t id = 0;
  std::string prompt;          // tokenized on the scheduler thread, with BOS/EOS and special-token parsing
  int32_t maxTokens = 100;     // -1: until the sequence's context is full
  std::vector<std::string> stop;
  SamplingOptions sampling;
  bool stream = false;         // emit text events as it is generated (the done event always carries the text)
  GrammarOptions grammar;
  std::optional<InfillInput> infill;  // set: `prompt` is ignored, the tokens are InfillTokens' (scheduler thread)
  int32_t sequence = -1;       // run in this sequence (llama-server's id_slot), waiting for it; -1: the scheduler picks
  // llama-server's context shift (--context-shift, n_keep, n_discard): at the sequence limit, drop nDiscard tokens
  // after the first nKeep (-1: the whole prompt; a BOS is kept besides) and go on, instead of finishing with "length".
  bool contextShift = false;
  int32_t nKeep = 0;
  int32_t nDiscard = 0;        // 0: half of what follows nKeep
  LoraConfig lora;             // adapters with scales, canonical (lora.h); empty: the base model
};

// Saves a sequence's KV state (with its tokens and the caller's metadata) or restores one. Runs on the scheduler
// thread between steps, once the sequence is idle.
struct StateTask {
  enum class Op { Save, Load };
  uint64_t id = 0;
  Op op = Op::Save;
  int32_t sequence = -1;       // Save: the sequence; Load: where to restore it (-1: an idle unreserved one)
  std::string meta;            // Save: stored in the file
  std::vector<uint8_t> data;   // Load: the file's bytes
};

struct StateResult {
  int32_t sequence = -1;
  int32_t tokens = 0;
  std::vector<uint8_t> data;   // Save: the file's bytes
  std::string meta;            // Load: the metadata it held
};

struct EmbeddingTask {
  uint64_t id = 0;
  std::vector<std::string> texts;
  bool normalize = true;
  // Set (rank pooling): each text is a document scored against this query, as RerankTokens lays the pair out.
  std::optional<std::string> rerankQuery;
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
  int32_t draftTokens = 0;          // speculative decoding: tokens drafted for it
  int32_t acceptedDraftTokens = 0;  // and those the model accepted
  int32_t contextShifts = 0;  // context shifts done during the generation (contextShift)
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
  enum class Kind { Text, Done, Error, Embeddings, State };
  uint64_t id = 0;
  Kind kind = Kind::Text;
  std::string text;                          // Text
  GenerationStats stats;                     // Done
  std::string code, message;                 // Error
  std::vector<std::vector<float>> vectors;   // Embeddings
  StateResult state;                         // State
};

// Where a scheduler sends its events. Called on the scheduler thread (and by Cancel on the caller's thread), once
// per scheduler step with everything that step produced; an implementation must not block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Publish(std::vector<Event>&& events) = 0;
};

}  // namespace tea
