#include "text_utils.h"

#include <algorithm>
#include <stdexcept>

#include "error.h"
#include "special_split.h"

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

std::string DetokenizeUnchecked(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool removeSpecial, bool unparseSpecial) {
  const int32_t nTokens = static_cast<int32_t>(tokens.size());
  std::string text(tokens.size() * 8 + 16, '\0');
  // remove_special: drop the BOS/EOS the tokenizer itself would add; unparse_special renders control tokens.
  int32_t n = llama_detokenize(vocab, tokens.data(), nTokens, text.data(), static_cast<int32_t>(text.size()), removeSpecial, unparseSpecial);
  if (n < 0) {
    text.resize(static_cast<size_t>(-n));
    n = llama_detokenize(vocab, tokens.data(), nTokens, text.data(), static_cast<int32_t>(text.size()), removeSpecial, unparseSpecial);
    if (n < 0) throw TeaError("ERR_INTERNAL", "detokenization failed");
  }
  text.resize(static_cast<size_t>(n));
  return text;
}

// The tokens that addSpecial puts before and after any text (BOS, EOS, CLS/SEP, by tokenizer family), told apart
// with a probe: tokenize("", true) is both together, and a short probe with and without them shows where the text
// goes in between. False when no probe tells (then the text is tokenized in one call).
bool SpecialFrame(const llama_vocab* vocab, bool parseSpecial, std::vector<llama_token>& prefix, std::vector<llama_token>& suffix) {
  const std::vector<llama_token> frame = TokenizeUnchecked(vocab, "", true, parseSpecial);
  if (frame.empty()) {
    prefix.clear();
    suffix.clear();
    return true;
  }
  for (const char* probe : {"a", "0", "x y", "\xe4\xb8\x80"}) {
    const std::vector<llama_token> framed = TokenizeUnchecked(vocab, probe, true, parseSpecial);
    const std::vector<llama_token> bare = TokenizeUnchecked(vocab, probe, false, parseSpecial);
    if (framed.size() != bare.size() + frame.size()) continue;
    size_t found = 0, at = 0;
    for (size_t j = 0; j <= frame.size(); ++j) {
      std::vector<llama_token> candidate(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(j));
      candidate.insert(candidate.end(), bare.begin(), bare.end());
      candidate.insert(candidate.end(), frame.begin() + static_cast<std::ptrdiff_t>(j), frame.end());
      if (candidate == framed) {
        ++found;
        at = j;
      }
    }
    if (found != 1) continue;
    prefix.assign(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(at));
    suffix.assign(frame.begin() + static_cast<std::ptrdiff_t>(at), frame.end());
    return true;
  }
  return false;
}

std::vector<llama_token> TokenizeInPieces(const llama_vocab* vocab, const std::string& text, bool addSpecial, bool parseSpecial,
                                          const std::function<bool()>& stop) {
  const SpecialSplitter splitter(vocab, parseSpecial);
  std::vector<llama_token> prefix, suffix;
  if (splitter.empty() || (addSpecial && !SpecialFrame(vocab, parseSpecial, prefix, suffix))) {
    return TokenizeUnchecked(vocab, text, addSpecial, parseSpecial);
  }
  std::vector<llama_token> out = prefix;
  SpecialSplitter::Cursor cursor(splitter, text);
  const std::string_view all(text);
  size_t start = 0;
  while (start < text.size()) {
    if (stop && stop()) throw TeaError("ERR_ABORTED", "tokenization aborted");
    const size_t cut = text.size() - start > kTokenizePieceBytes ? cursor.Next(start + kTokenizePieceBytes, kMaxUnsplitSpecials)
                                                                 : std::string_view::npos;
    const size_t end = cut == std::string_view::npos ? text.size() : cut;
    const std::vector<llama_token> piece = TokenizeUnchecked(vocab, std::string(all.substr(start, end - start)), false, parseSpecial);
    out.insert(out.end(), piece.begin(), piece.end());
    start = end;
  }
  out.insert(out.end(), suffix.begin(), suffix.end());
  return out;
}

}  // namespace

std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text, bool addSpecial, bool parseSpecial,
                                  const std::function<bool()>& stop) {
  return VocabularyCall([&] {
    if (text.size() <= kTokenizeDirectBytes) return TokenizeUnchecked(vocab, text, addSpecial, parseSpecial);
    return TokenizeInPieces(vocab, text, addSpecial, parseSpecial, stop);
  });
}

std::string TokenToPiece(const llama_vocab* vocab, llama_token token, bool special) {
  return VocabularyCall([&] { return TokenToPieceUnchecked(vocab, token, special); });
}

std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool special) {
  return Detokenize(vocab, tokens, !special, special);
}

std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool removeSpecial, bool unparseSpecial) {
  return VocabularyCall([&] { return DetokenizeUnchecked(vocab, tokens, removeSpecial, unparseSpecial); });
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

std::string MetaString(const llama_model* model, const char* key) {
  return ReadString([&](char* buf, size_t size) { return llama_model_meta_val_str(model, key, buf, size); });
}

}  // namespace tea
