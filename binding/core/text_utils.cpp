#include "text_utils.h"

#include <algorithm>
#include <stdexcept>

#include "error.h"

namespace tea {

namespace {

// llama.cpp's tokenizers look tokens up with .at() and .substr(): on a vocabulary that lacks a token they need
// (a byte-fallback token, say) that throws std::out_of_range. The model is at fault, not the caller.
template <typename Fn>
auto VocabularyCall(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::logic_error& e) {
    throw TeaError("ERR_MODEL_INVALID", std::string("the model's vocabulary cannot handle this text (") + e.what() + ")");
  }
}

std::vector<llama_token> TokenizeUnchecked(const llama_vocab* vocab, const std::string& text, bool addSpecial, bool parseSpecial) {
  if (text.size() > static_cast<size_t>(INT32_MAX) / 2) throw TeaError("ERR_INVALID_ARGUMENT", "text is too long to tokenize");
  const int32_t len = static_cast<int32_t>(text.size());
  std::vector<llama_token> tokens(static_cast<size_t>(len) + 2);
  int32_t n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()), addSpecial, parseSpecial);
  if (n < 0) {
    if (n == INT32_MIN) throw TeaError("ERR_INVALID_ARGUMENT", "text produced too many tokens");
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()), addSpecial, parseSpecial);
    if (n < 0) throw TeaError("ERR_INTERNAL", "tokenization failed");
  }
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::string TokenToPieceUnchecked(const llama_vocab* vocab, llama_token token, bool special) {
  char small[64];
  int32_t n = llama_token_to_piece(vocab, token, small, sizeof(small), 0, special);
  if (n >= 0) return std::string(small, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(-n), '\0');
  n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, special);
  if (n < 0) throw TeaError("ERR_INTERNAL", "token_to_piece failed");
  big.resize(static_cast<size_t>(n));
  return big;
}

std::string DetokenizeUnchecked(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool special) {
  const int32_t nTokens = static_cast<int32_t>(tokens.size());
  std::string text(tokens.size() * 8 + 16, '\0');
  // remove_special: drop the BOS/EOS the tokenizer itself would add; unparse_special renders control tokens.
  int32_t n = llama_detokenize(vocab, tokens.data(), nTokens, text.data(), static_cast<int32_t>(text.size()), !special, special);
  if (n < 0) {
    text.resize(static_cast<size_t>(-n));
    n = llama_detokenize(vocab, tokens.data(), nTokens, text.data(), static_cast<int32_t>(text.size()), !special, special);
    if (n < 0) throw TeaError("ERR_INTERNAL", "detokenization failed");
  }
  text.resize(static_cast<size_t>(n));
  return text;
}

}  // namespace

std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text, bool addSpecial, bool parseSpecial) {
  return VocabularyCall([&] { return TokenizeUnchecked(vocab, text, addSpecial, parseSpecial); });
}

std::string TokenToPiece(const llama_vocab* vocab, llama_token token, bool special) {
  return VocabularyCall([&] { return TokenToPieceUnchecked(vocab, token, special); });
}

std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool special) {
  return VocabularyCall([&] { return DetokenizeUnchecked(vocab, tokens, special); });
}

size_t IncompleteUtf8Tail(const std::string& text) {
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  const size_t size = text.size();
  for (size_t back = 1; back <= 4 && back <= size; ++back) {
    const unsigned char c = static_cast<unsigned char>(text[size - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return back < need ? back : 0;
  }
  return 0;  // only continuation bytes: invalid text, nothing to wait for
}

size_t PartialStopSuffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& stop : stops) {
    const size_t maxLen = std::min(stop.size() - 1, text.size());
    for (size_t len = maxLen; len > best; --len) {
      if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
        best = len;
        break;
      }
    }
  }
  return best;
}

size_t FindStop(const std::string& text, const std::vector<std::string>& stops, size_t from) {
  size_t earliest = std::string::npos;
  for (const std::string& stop : stops) {
    const size_t pos = text.find(stop, from);
    if (pos < earliest) earliest = pos;
  }
  return earliest;
}

}  // namespace tea
