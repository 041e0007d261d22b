#include "sampler.h"

#include <algorithm>
#include <cmath>

#include "error.h"
#include "json-schema-to-grammar.h"  // llama.cpp common
#include "log.h"
#include "sampling.h"                // llama.cpp common
#include "text_utils.h"

namespace tea {

void SamplerDeleter::operator()(common_sampler* sampler) const { common_sampler_free(sampler); }

std::string SchemaToGrammar(const std::string& schemaJson) {
  try {
    common_json schema = common_json::parse(schemaJson);
    // As llama-server: an empty schema means any object.
    if (schema.is_object() && schema.empty()) schema["type"] = "object";
    std::string gbnf = json_schema_to_grammar(schema);
    if (gbnf.size() > kMaxGrammarBytes) {
      throw TeaError("ERR_INVALID_SCHEMA", "the grammar of the JSON schema has " + std::to_string(gbnf.size()) + " bytes, more than " +
                                               std::to_string(kMaxGrammarBytes) + " (each sampling step costs time in proportion to its alternatives)");
    }
    return gbnf;
  } catch (const TeaError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw TeaError("ERR_OUT_OF_MEMORY", "out of memory while converting the JSON schema to a grammar");
  } catch (const std::exception& e) {
    throw TeaError("ERR_INVALID_SCHEMA", std::string("JSON schema not supported by llama.cpp: ") + e.what());
  }
}

namespace {

// One token, or -1: how llama-server decides whether a preserved token or a trigger word is a single token.
llama_token SingleToken(const llama_vocab* vocab, const std::string& text) {
  const std::vector<llama_token> ids = Tokenize(vocab, text, /*addSpecial=*/false, /*parseSpecial=*/true);
  return ids.size() == 1 ? ids[0] : -1;
}

// The fields beyond the basic ones, as llama-server's request schema sets them (tools/server/server-schema.cpp).
void ApplySamplerSettings(const llama_vocab* vocab, const SamplingOptions& o, int32_t contextSize, common_params_sampling& params) {
  params.typ_p = o.typicalP;
  params.dynatemp_range = o.dynatempRange;
  params.dynatemp_exponent = o.dynatempExponent;
  params.top_n_sigma = o.topNSigma;
  params.xtc_probability = o.xtcProbability;
  params.xtc_threshold = o.xtcThreshold;
  params.mirostat = o.mirostat;
  params.mirostat_tau = o.mirostatTau;
  params.mirostat_eta = o.mirostatEta;
  params.dry_multiplier = o.dryMultiplier;
  // llama-server replaces a base below 1 by its default (which disables nothing): the same here.
  params.dry_base = o.dryBase < 1.0f ? params.dry_base : o.dryBase;
  params.dry_allowed_length = o.dryAllowedLength;
  params.dry_penalty_last_n = o.dryPenaltyLastN < 0 ? contextSize : o.dryPenaltyLastN;
  params.dry_sequence_breakers = o.drySequenceBreakers;
  params.min_keep = o.minKeep;
  params.n_probs = o.logprobs ? o.topLogprobs : 0;
  params.ignore_eos = o.ignoreEos;
  if (!o.samplers.empty()) {
    params.samplers = common_sampler_types_from_names(o.samplers);
    // llama.cpp skips a name it does not know with a warning: here it is the caller's mistake.
    if (params.samplers.size() != o.samplers.size()) throw TeaError("ERR_INVALID_ARGUMENT", "samplers names a sampler llama.cpp does not know");
  }
  const int32_t nVocab = llama_vocab_n_tokens(vocab);
  for (const SamplingOptions::LogitBias& b : o.logitBias) {
    if (b.token >= 0) {
      if (b.token >= nVocab) {
        throw TeaError("ERR_INVALID_ARGUMENT", "logitBias token " + std::to_string(b.token) + " is not below the vocabulary size " + std::to_string(nVocab));
      }
      params.logit_bias.push_back({b.token, b.bias});
    } else {
      // As llama-server: the text's tokens without BOS/EOS and without parsing special tokens.
      for (llama_token t : Tokenize(vocab, b.text, /*addSpecial=*/false, /*parseSpecial=*/false)) params.logit_bias.push_back({t, b.bias});
    }
  }
  if (o.ignoreEos) {
    // llama-server's logit_bias_eog (common_init_from_params): every end-of-generation token banned.
    for (llama_token t = 0; t < nVocab; ++t) {
      if (llama_vocab_is_eog(vocab, t)) params.logit_bias.push_back({t, -INFINITY});
    }
  }
}

}  // namespace

SamplerPtr MakeSampler(const llama_model* model, const SamplingOptions& o, const GrammarOptions& g, int32_t contextSize,
                       std::set<llama_token>* preserved) {
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

  const llama_vocab* vocab = llama_model_get_vocab(model);
  ApplySamplerSettings(vocab, o, contextSize, params);
  if (!g.empty()) {
    std::string gbnf = g.jsonSchema.empty() ? g.grammar : SchemaToGrammar(g.jsonSchema);
    const common_grammar_type type = !g.jsonSchema.empty() || g.kind == GrammarOptions::Kind::OutputFormat ? COMMON_GRAMMAR_TYPE_OUTPUT_FORMAT
                                     : g.kind == GrammarOptions::Kind::ToolCalls                          ? COMMON_GRAMMAR_TYPE_TOOL_CALLS
                                                                                                          : COMMON_GRAMMAR_TYPE_USER;
    params.grammar = common_grammar(type, std::move(gbnf));
    params.grammar_lazy = g.lazy;
    params.generation_prompt = g.generationPrompt;
    // The conversions llama-server makes (tools/server/server-schema.cpp): preserved tokens by id, and a trigger
    // word that is one preserved token becomes a token trigger.
    for (const std::string& text : g.preservedTokens) {
      const llama_token id = SingleToken(vocab, text);
      if (id >= 0) params.preserved_tokens.insert(id);
    }
    for (const GrammarOptions::Trigger& t : g.triggers) {
      if (t.type < COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN || t.type > COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL) {
        throw TeaError("ERR_INVALID_ARGUMENT", "unknown grammar trigger type " + std::to_string(t.type));
      }
      const auto type = static_cast<common_grammar_trigger_type>(t.type);
      if (type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD) {
        const llama_token id = SingleToken(vocab, t.value);
        if (id >= 0 && params.preserved_tokens.count(id) != 0) {
          params.grammar_triggers.push_back({COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN, t.value, id});
          continue;
        }
      } else if (type == COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN) {
        const llama_token id = SingleToken(vocab, t.value);
        if (id < 0) throw TeaError("ERR_INVALID_GRAMMAR", "grammar trigger token '" + t.value + "' is not one token of this model");
        params.grammar_triggers.push_back({type, t.value, id});
        continue;
      }
      params.grammar_triggers.push_back({type, t.value, LLAMA_TOKEN_NULL});
    }
    if (params.grammar_lazy && params.grammar_triggers.empty()) throw TeaError("ERR_INVALID_GRAMMAR", "a lazy grammar needs at least one trigger");
    if (preserved) *preserved = params.preserved_tokens;
  }

  TakeLastError();  // what llama.cpp logs from here on is this grammar's parse error
  common_sampler* sampler = nullptr;
  try {
    sampler = common_sampler_init(model, params);
  } catch (const std::bad_alloc&) {
    throw TeaError("ERR_OUT_OF_MEMORY", "out of memory while building the grammar sampler");
  } catch (const std::exception& e) {
    if (!params.grammar.empty()) {
      std::string reason = TakeLastError();
      throw TeaError("ERR_INVALID_GRAMMAR", std::string("llama.cpp could not parse the grammar: ") + (reason.empty() ? e.what() : reason));
    }
    throw TeaError("ERR_INVALID_ARGUMENT", std::string("llama.cpp rejected the sampling settings: ") + e.what());
  }
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
