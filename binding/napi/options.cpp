#include "options.h"

#include <cmath>

#include "errors.h"

namespace tea {

namespace {

[[noreturn]] void Invalid(const std::string& message) { throw TeaError("ERR_INVALID_ARGUMENT", message); }

double Number(const Napi::Object& obj, const char* name, double fallback, double min, double max, bool integer) {
  Napi::Value value = obj.Get(name);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsNumber()) Invalid(std::string(name) + " must be a number");
  const double n = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(n)) Invalid(std::string(name) + " must be a finite number");
  if (integer && std::floor(n) != n) Invalid(std::string(name) + " must be an integer");
  if (n < min || n > max) {
    Invalid(std::string(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " + std::to_string(n) + ")");
  }
  return n;
}

bool Bool(const Napi::Object& obj, const char* name, bool fallback) {
  Napi::Value value = obj.Get(name);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsBoolean()) Invalid(std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

Napi::Object OptionsObject(const Napi::Value& value) {
  if (value.IsUndefined() || value.IsNull()) return Napi::Object::New(value.Env());
  if (!value.IsObject()) Invalid("options must be an object");
  return value.As<Napi::Object>();
}

std::string OptionalString(const Napi::Object& obj, const char* name) {
  Napi::Value value = obj.Get(name);
  if (value.IsUndefined() || value.IsNull()) return "";
  if (!value.IsString()) Invalid(std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<std::string> StringList(const Napi::Object& obj, const char* name) {
  std::vector<std::string> out;
  Napi::Value value = obj.Get(name);
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsArray()) Invalid(std::string(name) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) Invalid(std::string(name) + " must be an array of strings");
    out.push_back(item.As<Napi::String>().Utf8Value());
  }
  return out;
}

// The constrained-output fields of generate() options (lib/model.ts fills them from the request or from the
// chat template's result).
void ParseGrammar(const Napi::Object& obj, GrammarOptions& g) {
  g.grammar = OptionalString(obj, "grammar");
  g.jsonSchema = OptionalString(obj, "jsonSchema");
  const std::string kind = OptionalString(obj, "grammarKind");
  if (kind == "tool_calls") g.kind = GrammarOptions::Kind::ToolCalls;
  else if (kind == "output_format") g.kind = GrammarOptions::Kind::OutputFormat;
  else if (kind.empty() || kind == "user") g.kind = GrammarOptions::Kind::User;
  else Invalid("grammarKind must be user, output_format or tool_calls");
  g.lazy = Bool(obj, "grammarLazy", false);
  g.preservedTokens = StringList(obj, "preservedTokens");
  g.generationPrompt = OptionalString(obj, "generationPrompt");
  Napi::Value triggers = obj.Get("grammarTriggers");
  if (!triggers.IsUndefined() && !triggers.IsNull()) {
    if (!triggers.IsArray()) Invalid("grammarTriggers must be an array");
    Napi::Array array = triggers.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      if (!item.IsObject()) Invalid("grammarTriggers[i] must be { type, value }");
      Napi::Object t = item.As<Napi::Object>();
      GrammarOptions::Trigger trigger;
      trigger.type = static_cast<int32_t>(Number(t, "type", 1, 0, 3, true));
      trigger.value = OptionalString(t, "value");
      g.triggers.push_back(std::move(trigger));
    }
  }
}

// The sampler fields beyond the basic ones (lib/engine/request.ts has validated them; these checks keep the
// addon safe on its own).
void ParseSamplerExtras(const Napi::Object& obj, SamplingOptions& o) {
  o.typicalP = static_cast<float>(Number(obj, "typicalP", o.typicalP, -1e6, 1e6, false));
  o.dynatempRange = static_cast<float>(Number(obj, "dynatempRange", o.dynatempRange, -1e6, 1e6, false));
  o.dynatempExponent = static_cast<float>(Number(obj, "dynatempExponent", o.dynatempExponent, -1e6, 1e6, false));
  o.topNSigma = static_cast<float>(Number(obj, "topNSigma", o.topNSigma, -1e6, 1e6, false));
  o.xtcProbability = static_cast<float>(Number(obj, "xtcProbability", o.xtcProbability, 0, 1, false));
  o.xtcThreshold = static_cast<float>(Number(obj, "xtcThreshold", o.xtcThreshold, 0, 1, false));
  o.mirostat = static_cast<int32_t>(Number(obj, "mirostat", o.mirostat, 0, 2, true));
  o.mirostatTau = static_cast<float>(Number(obj, "mirostatTau", o.mirostatTau, -1e6, 1e6, false));
  o.mirostatEta = static_cast<float>(Number(obj, "mirostatEta", o.mirostatEta, -1e6, 1e6, false));
  o.dryMultiplier = static_cast<float>(Number(obj, "dryMultiplier", o.dryMultiplier, -1e6, 1e6, false));
  o.dryBase = static_cast<float>(Number(obj, "dryBase", o.dryBase, -1e6, 1e6, false));
  o.dryAllowedLength = static_cast<int32_t>(Number(obj, "dryAllowedLength", o.dryAllowedLength, 0, INT32_MAX, true));
  o.dryPenaltyLastN = static_cast<int32_t>(Number(obj, "dryPenaltyLastN", o.dryPenaltyLastN, -1, INT32_MAX, true));
  if (obj.Has("drySequenceBreakers") && !obj.Get("drySequenceBreakers").IsUndefined()) o.drySequenceBreakers = StringList(obj, "drySequenceBreakers");
  o.samplers = StringList(obj, "samplers");
  o.ignoreEos = Bool(obj, "ignoreEos", o.ignoreEos);
  o.minKeep = static_cast<int32_t>(Number(obj, "minKeep", o.minKeep, 0, INT32_MAX, true));
  o.logprobs = Bool(obj, "logprobs", o.logprobs);
  o.topLogprobs = static_cast<int32_t>(Number(obj, "topLogprobs", o.topLogprobs, 0, 1 << 20, true));
  Napi::Value bias = obj.Get("logitBias");
  if (bias.IsUndefined() || bias.IsNull()) return;
  if (!bias.IsArray()) Invalid("logitBias must be an array of { token | text, bias }");
  Napi::Array list = bias.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) Invalid("logitBias must be an array of { token | text, bias }");
    Napi::Object entry = item.As<Napi::Object>();
    SamplingOptions::LogitBias b;
    Napi::Value text = entry.Get("text");
    if (text.IsString()) {
      b.text = text.As<Napi::String>().Utf8Value();
    } else {
      b.token = static_cast<int32_t>(Number(entry, "token", -1, 0, INT32_MAX, true));
      if (b.token < 0) Invalid("logitBias entries need a token id or a text");
    }
    Napi::Value value = entry.Get("bias");
    if (!value.IsNumber()) Invalid("logitBias bias must be a number");
    const double v = value.As<Napi::Number>().DoubleValue();
    if (std::isnan(v) || v == INFINITY) Invalid("logitBias bias must be finite or -Infinity");
    b.bias = static_cast<float>(v);
    o.logitBias.push_back(std::move(b));
  }
}

}  // namespace

std::string RequireString(const Napi::Value& value, const char* name) {
  if (!value.IsString()) Invalid(std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

int32_t RequireInt(const Napi::Value& value, const char* name, int64_t min, int64_t max) {
  if (!value.IsNumber()) Invalid(std::string(name) + " must be a number");
  const double n = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(n) || std::floor(n) != n || n < static_cast<double>(min) || n > static_cast<double>(max)) {
    Invalid(std::string(name) + " must be an integer between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return static_cast<int32_t>(n);
}

std::vector<llama_token> RequireTokens(const Napi::Value& value, int32_t vocabSize) {
  std::vector<llama_token> tokens;
  auto check = [&](double t) {
    if (!std::isfinite(t) || std::floor(t) != t || t < 0 || t >= vocabSize) {
      Invalid("token ids must be integers in [0, " + std::to_string(vocabSize) + ")");
    }
    tokens.push_back(static_cast<llama_token>(t));
  };
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array array = value.As<Napi::Int32Array>();
    for (size_t i = 0; i < array.ElementLength(); ++i) check(array[i]);
  } else if (value.IsArray()) {
    Napi::Array array = value.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      if (!item.IsNumber()) Invalid("token ids must be numbers");
      check(item.As<Napi::Number>().DoubleValue());
    }
  } else {
    Invalid("tokens must be an Int32Array or an array of numbers");
  }
  return tokens;
}

ModelOptions ModelOptions::Parse(const Napi::Value& value) {
  Napi::Object obj = OptionsObject(value);
  ModelOptions o;
  o.gpuLayers = static_cast<int32_t>(Number(obj, "gpuLayers", o.gpuLayers, -1, 100000, true));
  o.vocabOnly = Bool(obj, "vocabOnly", o.vocabOnly);
  o.useMmap = Bool(obj, "useMmap", o.useMmap);
  Napi::Value servers = obj.Get("rpcServers");
  if (!servers.IsUndefined() && !servers.IsNull()) {
    if (!servers.IsArray()) Invalid("rpcServers must be an array of strings");
    Napi::Array list = servers.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) o.rpcServers.push_back(RequireString(list.Get(i), "rpcServers[i]"));
  }
  o.rpcTimeoutMs = static_cast<int32_t>(Number(obj, "rpcTimeoutMs", o.rpcTimeoutMs, 0, 2147483647, true));
  Napi::Value split = obj.Get("tensorSplit");
  if (!split.IsUndefined() && !split.IsNull()) {
    if (!split.IsArray()) Invalid("tensorSplit must be an array of numbers");
    Napi::Array list = split.As<Napi::Array>();
    if (list.Length() > llama_max_devices()) Invalid("tensorSplit has more entries than llama.cpp's device limit");
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value item = list.Get(i);
      if (!item.IsNumber()) Invalid("tensorSplit must be an array of numbers");
      const double v = item.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(v) || v < 0) Invalid("tensorSplit entries must be finite and >= 0");
      o.tensorSplit.push_back(static_cast<float>(v));
    }
  }
  return o;
}

ContextOptions ContextOptions::Parse(const Napi::Value& value) {
  Napi::Object obj = OptionsObject(value);
  ContextOptions o;
  o.contextSize = static_cast<uint32_t>(Number(obj, "contextSize", o.contextSize, 0, 1 << 24, true));
  o.batchSize = static_cast<uint32_t>(Number(obj, "batchSize", o.batchSize, 1, 1 << 20, true));
  o.microBatchSize = static_cast<uint32_t>(Number(obj, "microBatchSize", std::min(o.batchSize, o.microBatchSize), 1, o.batchSize, true));
  o.threads = static_cast<int32_t>(Number(obj, "threads", o.threads, 1, 1024, true));
  o.threadsBatch = static_cast<int32_t>(Number(obj, "threadsBatch", o.threads, 1, 1024, true));
  o.embeddings = Bool(obj, "embeddings", o.embeddings);
  o.pooling = static_cast<int32_t>(Number(obj, "pooling", o.pooling, -1, LLAMA_POOLING_TYPE_RANK, true));
  o.flashAttention = static_cast<int32_t>(Number(obj, "flashAttention", o.flashAttention, LLAMA_FLASH_ATTN_TYPE_AUTO, LLAMA_FLASH_ATTN_TYPE_ENABLED, true));
  o.sequences = static_cast<int32_t>(Number(obj, "sequences", o.sequences, 1, 256, true));  // LLAMA_MAX_SEQ
  o.maxQueued = static_cast<int32_t>(Number(obj, "maxQueued", o.maxQueued, 0, INT32_MAX, true));
  SpeculativeOptions& s = o.speculative;
  s.draftMax = static_cast<int32_t>(Number(obj, "draftMax", s.draftMax, 1, 1024, true));
  s.draftMin = static_cast<int32_t>(Number(obj, "draftMin", s.draftMin, 0, s.draftMax, true));
  s.draftPMin = static_cast<float>(Number(obj, "draftPMin", s.draftPMin, 0, 1, false));
  s.ngram = Bool(obj, "ngram", s.ngram);
  s.ngramSize = static_cast<int32_t>(Number(obj, "ngramSize", s.ngramSize, 1, 1024, true));  // llama.cpp's bounds
  s.ngramMax = static_cast<int32_t>(Number(obj, "ngramMax", s.ngramMax, 1, 1024, true));
  return o;
}

GenerationTask ParseGenerationTask(const Napi::Value& prompt, const Napi::Value& options, bool stream) {
  GenerationTask task;
  task.prompt = RequireString(prompt, "prompt");
  task.stream = stream;
  Napi::Object obj = OptionsObject(options);
  SamplingOptions& o = task.sampling;
  task.maxTokens = static_cast<int32_t>(Number(obj, "maxTokens", task.maxTokens, -1, INT32_MAX, true));
  o.temperature = static_cast<float>(Number(obj, "temperature", o.temperature, 0, 100, false));
  o.topK = static_cast<int32_t>(Number(obj, "topK", o.topK, 0, INT32_MAX, true));
  o.topP = static_cast<float>(Number(obj, "topP", o.topP, 0, 1, false));
  o.minP = static_cast<float>(Number(obj, "minP", o.minP, 0, 1, false));
  o.repeatPenalty = static_cast<float>(Number(obj, "repeatPenalty", o.repeatPenalty, 1e-6, 100, false));
  o.repeatLastN = static_cast<int32_t>(Number(obj, "repeatLastN", o.repeatLastN, -1, INT32_MAX, true));
  o.frequencyPenalty = static_cast<float>(Number(obj, "frequencyPenalty", o.frequencyPenalty, -100, 100, false));
  o.presencePenalty = static_cast<float>(Number(obj, "presencePenalty", o.presencePenalty, -100, 100, false));
  o.seed = static_cast<uint32_t>(Number(obj, "seed", o.seed, 0, 4294967295.0, true));
  ParseSamplerExtras(obj, o);
  Napi::Value stop = obj.Get("stop");
  if (!stop.IsUndefined() && !stop.IsNull()) {
    if (!stop.IsArray()) Invalid("stop must be an array of strings");
    Napi::Array array = stop.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      if (!item.IsString() || item.As<Napi::String>().Utf8Value().empty()) Invalid("stop strings must be non-empty strings");
      task.stop.push_back(item.As<Napi::String>().Utf8Value());
    }
  }
  ParseGrammar(obj, task.grammar);
  task.sequence = static_cast<int32_t>(Number(obj, "sequence", task.sequence, -1, 255, true));
  task.contextShift = Bool(obj, "contextShift", task.contextShift);
  task.nKeep = static_cast<int32_t>(Number(obj, "nKeep", task.nKeep, -1, INT32_MAX, true));
  task.nDiscard = static_cast<int32_t>(Number(obj, "nDiscard", task.nDiscard, 0, INT32_MAX, true));
  return task;
}

}  // namespace tea
