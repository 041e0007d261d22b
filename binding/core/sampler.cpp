#include "sampler.h"

#include <algorithm>

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
