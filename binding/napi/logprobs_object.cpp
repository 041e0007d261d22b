#include "logprobs_object.h"

#include "text_utils.h"

namespace tea {

namespace {

// { id, token, bytes, logprob }: `token` is the piece without a trailing partial UTF-8 character (as llama-server
// sends it), `bytes` the whole piece.
Napi::Object ProbObject(Napi::Env env, const GenerationStats::TokenProb& p) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", p.token);
  out.Set("token", Napi::String::New(env, p.piece.substr(0, p.piece.size() - IncompleteUtf8Tail(p.piece))));
  Napi::Array bytes = Napi::Array::New(env, p.piece.size());
  for (size_t i = 0; i < p.piece.size(); ++i) bytes.Set(static_cast<uint32_t>(i), static_cast<double>(static_cast<unsigned char>(p.piece[i])));
  out.Set("bytes", bytes);
  out.Set("logprob", static_cast<double>(p.logprob));
  return out;
}

}  // namespace

Napi::Array LogprobsArray(Napi::Env env, const std::vector<GenerationStats::TokenLogprobs>& entries) {
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Napi::Object entry = ProbObject(env, entries[i].sampled);
    Napi::Array top = Napi::Array::New(env, entries[i].top.size());
    for (size_t k = 0; k < entries[i].top.size(); ++k) top.Set(static_cast<uint32_t>(k), ProbObject(env, entries[i].top[k]));
    entry.Set("topLogprobs", top);
    out.Set(static_cast<uint32_t>(i), entry);
  }
  return out;
}

}  // namespace tea
