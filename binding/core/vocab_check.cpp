#include "vocab_check.h"

#include <algorithm>
#include <array>
#include <memory>
#include <unordered_map>

#include "error.h"
#include "gguf.h"
#include "text_utils.h"

namespace tea {

namespace {

struct GgufDeleter {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};

std::string Shown(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

void CheckTokenTable(const std::string& path) {
  gguf_init_params params{};
  params.no_alloc = true;
  params.ctx = nullptr;
  std::unique_ptr<gguf_context, GgufDeleter> ctx(gguf_init_from_file(path.c_str(), params));
  if (!ctx) return;  // not readable as GGUF: llama.cpp's loader reports why
  const int64_t key = gguf_find_key(ctx.get(), "tokenizer.ggml.tokens");
  if (key < 0 || gguf_get_kv_type(ctx.get(), key) != GGUF_TYPE_ARRAY || gguf_get_arr_type(ctx.get(), key) != GGUF_TYPE_STRING) return;
  const size_t n = gguf_get_arr_n(ctx.get(), key);

  // A WordPiece vocabulary has no byte tokens: llama_vocab::impl::token_to_byte aborts on one, and the loader
  // calls it for every token of type BYTE while it caches the token pieces.
  const int64_t model = gguf_find_key(ctx.get(), "tokenizer.ggml.model");
  const int64_t types = gguf_find_key(ctx.get(), "tokenizer.ggml.token_type");
  if (model >= 0 && gguf_get_kv_type(ctx.get(), model) == GGUF_TYPE_STRING && std::string(gguf_get_val_str(ctx.get(), model)) == "bert" &&
      types >= 0 && gguf_get_kv_type(ctx.get(), types) == GGUF_TYPE_ARRAY && gguf_get_arr_type(ctx.get(), types) == GGUF_TYPE_INT32) {
    const auto* type = static_cast<const int32_t*>(gguf_get_arr_data(ctx.get(), types));
    const size_t count = std::min(n, gguf_get_arr_n(ctx.get(), types));
    for (size_t i = 0; i < count; ++i) {
      if (type[i] == LLAMA_TOKEN_TYPE_BYTE) {
        throw TeaError("ERR_MODEL_INVALID", "the vocabulary is invalid: token " + std::to_string(i) + " of a WordPiece (bert) vocabulary has type BYTE");
      }
    }
  }
  std::unordered_map<std::string, size_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // As llama_vocab::impl::load: the text up to its first NUL, and a placeholder for an empty one.
    std::string word = gguf_get_arr_str(ctx.get(), key, i);
    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";
    const auto [it, inserted] = seen.emplace(std::move(word), i);
    if (!inserted) {
      throw TeaError("ERR_MODEL_INVALID", "the vocabulary is invalid: token " + std::to_string(i) + " ('" + Shown(it->first) +
                                              "') has the same text as token " + std::to_string(it->second));
    }
  }
}

void CheckVocabulary(const llama_vocab* vocab) {
  auto invalid = [](const std::string& why) { throw TeaError("ERR_MODEL_INVALID", "the vocabulary is invalid: " + why); };
  const enum llama_vocab_type type = llama_vocab_type(vocab);
  if (type == LLAMA_VOCAB_TYPE_NONE) invalid("the file has no tokenizer (tokenizer.ggml.model is 'none' or 'no_vocab')");
  const bool bos = llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL;
  const bool eos = llama_vocab_eos(vocab) != LLAMA_TOKEN_NULL;
  const bool sep = llama_vocab_sep(vocab) != LLAMA_TOKEN_NULL;
  // The special tokens llama_tokenize adds (it asserts they exist; an id past the vocabulary is dropped at load).
  switch (type) {
    case LLAMA_VOCAB_TYPE_SPM:
    case LLAMA_VOCAB_TYPE_BPE:
    case LLAMA_VOCAB_TYPE_UGM:
      if (llama_vocab_get_add_bos(vocab) && !bos) invalid("it adds a BOS token but has no valid tokenizer.ggml.bos_token_id");
      if (llama_vocab_get_add_eos(vocab) && !eos) invalid("it adds an EOS token but has no valid tokenizer.ggml.eos_token_id");
      break;
    case LLAMA_VOCAB_TYPE_WPM:
      if (!bos || !sep) invalid("a WordPiece vocabulary needs valid tokenizer.ggml.bos_token_id (or cls) and seperator_token_id");
      break;
    case LLAMA_VOCAB_TYPE_RWKV: {
      // llm_tokenizer_rwkv_session::tokenize restarts from the beginning of the text, forever, when a byte begins
      // a token but is not one itself: every first byte of a token must be a token.
      std::array<bool, 256> single{};
      std::array<bool, 256> first{};
      const int32_t n = llama_vocab_n_tokens(vocab);
      for (int32_t id = 0; id < n; ++id) {
        const std::string piece = TokenToPiece(vocab, id, /*special=*/true);
        if (piece.empty()) continue;
        const auto byte = static_cast<unsigned char>(piece[0]);
        first[byte] = true;
        if (piece.size() == 1) single[byte] = true;
      }
      for (int b = 0; b < 256; ++b) {
        if (first[b] && !single[b]) invalid("an RWKV vocabulary without a token for byte " + std::to_string(b) + ", which begins other tokens");
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace tea
