#include "text_worker.h"

#include <algorithm>

#include "text_utils.h"

namespace tea {

TextWorker::TextWorker(Napi::Env env, ModelPtr model, std::string text, bool addSpecial, bool parseSpecial, SharedFlag abort)
    : PromiseWorker(env, "tea-llama:Tokenize"),
      model_(std::move(model)),
      tokenizing_(true),
      text_(std::move(text)),
      addSpecial_(addSpecial),
      special_(parseSpecial),
      abort_(std::move(abort)) {
  watch_.emplace(env, abort_);
}

TextWorker::TextWorker(Napi::Env env, ModelPtr model, std::vector<llama_token> tokens, bool removeSpecial, bool unparseSpecial,
                       SharedFlag abort)
    : PromiseWorker(env, "tea-llama:Detokenize"),
      model_(std::move(model)),
      tokenizing_(false),
      tokens_(std::move(tokens)),
      addSpecial_(removeSpecial),
      special_(unparseSpecial),
      abort_(std::move(abort)) {
  watch_.emplace(env, abort_);
}

bool TextWorker::Stop() {
  watch_->Ping();  // a terminated worker_thread aborts this through the flag (env_watch.h)
  return abort_->load();
}

void TextWorker::Run() {
  struct ReleaseWatch {
    EnvWatch& watch;
    ~ReleaseWatch() { watch.Release(); }
  } releaseWatch{*watch_};
  const char* what = tokenizing_ ? "tokenization aborted" : "detokenization aborted";
  if (abort_->load()) throw TeaError("ERR_ABORTED", what);
  if (tokenizing_) {
    tokens_ = Tokenize(model_->vocab(), text_, addSpecial_, special_, [this] { return Stop(); });
    std::string().swap(text_);
  } else {
    // llama_detokenize runs in one call (linear): the flag is read before and after.
    text_ = Detokenize(model_->vocab(), tokens_, addSpecial_, special_);
    std::vector<llama_token>().swap(tokens_);
    if (abort_->load()) throw TeaError("ERR_ABORTED", what);
  }
}

Napi::Value TextWorker::Result(Napi::Env env) {
  if (!tokenizing_) return Napi::String::New(env, text_);
  Napi::Int32Array out = Napi::Int32Array::New(env, tokens_.size());
  std::copy(tokens_.begin(), tokens_.end(), out.Data());
  return out;
}

}  // namespace tea
