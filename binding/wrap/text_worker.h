// TextWorker: tokenize or detokenize on a pool thread, for texts too long to hold the main thread (lib/model.ts
// sends them here past its synchronous bound). Honours an AbortFlag between tokenizer pieces.
#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <vector>

#include "abort_flag.h"
#include "env_watch.h"
#include "handles.h"
#include "promise_worker.h"

namespace tea {

class TextWorker : public PromiseWorker {
 public:
  // Main thread: tokenize `text`.
  TextWorker(Napi::Env env, ModelPtr model, std::string text, bool addSpecial, bool parseSpecial, SharedFlag abort);
  // Main thread: detokenize `tokens` (llama_detokenize's remove_special and unparse_special).
  TextWorker(Napi::Env env, ModelPtr model, std::vector<llama_token> tokens, bool removeSpecial, bool unparseSpecial, SharedFlag abort);

 protected:
  // Worker thread.
  void Run() override;
  // Main thread: an Int32Array of tokens, or the text.
  Napi::Value Result(Napi::Env env) override;

 private:
  bool Stop();

  ModelPtr model_;  // keeps the vocabulary alive while this runs, even past dispose()
  bool tokenizing_;
  std::string text_;
  std::vector<llama_token> tokens_;
  bool addSpecial_ = false;  // tokenizing: add BOS/EOS; detokenizing: remove them
  bool special_ = false;
  SharedFlag abort_;
  std::optional<EnvWatch> watch_;
};

}  // namespace tea
