#include "prompt_format.h"

#include <algorithm>

#include "error.h"
#include "text_utils.h"

namespace tea {

namespace {

void ReplaceAll(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
}

void Append(std::vector<llama_token>& out, const std::vector<llama_token>& more) { out.insert(out.end(), more.begin(), more.end()); }

}  // namespace

std::vector<llama_token> RerankTokens(const llama_model* model, const std::string& query, const std::string& document) {
  const llama_vocab* vocab = llama_model_get_vocab(model);
  if (const char* tmpl = llama_model_chat_template(model, "rerank")) {
    // As llama-server: the query is put in first, so a "{document}" inside the query is filled in too.
    std::string prompt = tmpl;
    ReplaceAll(prompt, "{query}", query);
    ReplaceAll(prompt, "{document}", document);
    return Tokenize(vocab, prompt, /*addSpecial=*/false, /*parseSpecial=*/true);
  }
  llama_token eos = llama_vocab_eos(vocab);
  if (eos == LLAMA_TOKEN_NULL) eos = llama_vocab_sep(vocab);
  std::vector<llama_token> out;
  if (llama_vocab_get_add_bos(vocab)) out.push_back(llama_vocab_bos(vocab));
  Append(out, Tokenize(vocab, query, false, false));
  if (llama_vocab_get_add_eos(vocab)) out.push_back(eos);
  if (llama_vocab_get_add_sep(vocab)) out.push_back(llama_vocab_sep(vocab));
  Append(out, Tokenize(vocab, document, false, false));
  if (llama_vocab_get_add_eos(vocab)) out.push_back(eos);
  return out;
}

std::string MissingFimTokens(const llama_vocab* vocab) {
  std::string missing;
  if (llama_vocab_fim_pre(vocab) == LLAMA_TOKEN_NULL) missing += "prefix token is missing. ";
  if (llama_vocab_fim_suf(vocab) == LLAMA_TOKEN_NULL) missing += "suffix token is missing. ";
  if (llama_vocab_fim_mid(vocab) == LLAMA_TOKEN_NULL) missing += "middle token is missing. ";
  if (!missing.empty()) missing.pop_back();
  return missing;
}

bool HasFimTokens(const llama_vocab* vocab) { return MissingFimTokens(vocab).empty(); }

std::vector<llama_token> InfillTokens(const llama_vocab* vocab, const InfillInput& input, int32_t batchSize, int32_t predict,
                                      int32_t contextSize) {
  const std::string missing = MissingFimTokens(vocab);
  if (!missing.empty()) throw TeaError("ERR_MODEL_UNSUPPORTED", "infill needs the model's fill-in-the-middle tokens: " + missing);

  // The repository context: a project header, then each extra chunk under its file name.
  std::vector<llama_token> extra;
  const llama_token rep = llama_vocab_fim_rep(vocab);
  const llama_token sep = llama_vocab_fim_sep(vocab);
  if (rep != LLAMA_TOKEN_NULL) {
    extra.push_back(rep);
    Append(extra, Tokenize(vocab, "myproject\n", false, false));
  }
  for (const InfillInput::Chunk& chunk : input.extra) {
    if (sep != LLAMA_TOKEN_NULL) {
      extra.push_back(sep);
      Append(extra, Tokenize(vocab, chunk.filename + "\n", false, false));
    } else {
      // Without a file separator token, llama-server marks a chunk with this text.
      Append(extra, Tokenize(vocab, "\n\n--- snippet ---\n\n", false, false));
    }
    Append(extra, Tokenize(vocab, chunk.text, false, false));
  }
  if (sep != LLAMA_TOKEN_NULL) {
    extra.push_back(sep);
    Append(extra, Tokenize(vocab, "filename\n", false, false));
  }

  std::vector<llama_token> prefix = Tokenize(vocab, input.prefix, false, false);
  std::vector<llama_token> suffix = Tokenize(vocab, input.suffix, false, false);
  const std::vector<llama_token> prompt = Tokenize(vocab, input.prompt, false, true);

  // Prefix and suffix share one batch 3:1 (the prefix's end and the suffix's start matter most); the extra context
  // takes what the context has left after a batch and room to generate, its end kept.
  const size_t prefixTake = std::min<size_t>(prefix.size(), static_cast<size_t>(3 * (batchSize / 4)));
  const size_t suffixTake = std::min<size_t>(suffix.size(), static_cast<size_t>(std::max<int64_t>(0, batchSize / 4 - (2 + static_cast<int64_t>(prompt.size())))));
  const size_t extraTake = std::min<size_t>(extra.size(), static_cast<size_t>(std::max<int64_t>(0, int64_t{contextSize} - batchSize - 2 * int64_t{predict})));
  prefix.erase(prefix.begin(), prefix.end() - static_cast<std::ptrdiff_t>(prefixTake));
  suffix.resize(suffixTake);

  std::vector<llama_token> out(extra.end() - static_cast<std::ptrdiff_t>(extraTake), extra.end());
  if (llama_vocab_get_add_bos(vocab)) out.push_back(llama_vocab_bos(vocab));
  out.push_back(llama_vocab_fim_pre(vocab));
  Append(out, prefix);
  Append(out, prompt);
  out.push_back(llama_vocab_fim_suf(vocab));
  Append(out, suffix);
  out.push_back(llama_vocab_fim_mid(vocab));
  return out;
}

}  // namespace tea
