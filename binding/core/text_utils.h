// Tokenizer and text helpers shared by the model wrapper and the workers. Thread-safe: they only read the vocab.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "llama.h"

namespace tea {

// Texts up to this size go to llama_tokenize in one call.
constexpr size_t kTokenizeDirectBytes = 4096;
// Longer ones are tokenized in pieces of at least this size, cut before special tokens where that gives the same
// tokens (special_split.h): llama.cpp's special-token partition takes time quadratic in the special tokens of one
// call. A piece that cannot be cut within this many special-token occurrences is ERR_INVALID_ARGUMENT.
constexpr size_t kTokenizePieceBytes = 1024;
constexpr size_t kMaxUnsplitSpecials = 16384;

// llama.cpp's string getters write at most `size` bytes and return the full length: read, and retry once with
// a buffer that fits when the value was longer.
template <typename Read>
std::string ReadString(Read&& read) {
  char small[256];
  const int32_t n = read(small, sizeof(small));
  if (n < 0) return "";
  if (static_cast<size_t>(n) < sizeof(small)) return std::string(small, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(n) + 1, '\0');
  read(big.data(), big.size());
  big.resize(static_cast<size_t>(n));
  return big;
}

// A metadata value of the model as a string, whole ("" when the key is absent).
std::string MetaString(const llama_model* model, const char* key);

// A std::logic_error from llama.cpp's tokenizer (a token the vocabulary lacks) becomes ERR_MODEL_INVALID.
// `stop`, when given, is polled between pieces (any thread: the caller's); true ends it with ERR_ABORTED.
std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text, bool addSpecial, bool parseSpecial,
                                  const std::function<bool()>& stop = {});
std::string TokenToPiece(const llama_vocab* vocab, llama_token token, bool special);
std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool special);
// llama_detokenize's two flags apart: `removeSpecial` drops the BOS/EOS the tokenizer adds, `unparseSpecial`
// renders control tokens as text (the form above is !special, special).
std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool removeSpecial, bool unparseSpecial);

// Bytes at the end of `text` that begin a UTF-8 sequence not yet complete (0 when the text ends on a boundary).
size_t IncompleteUtf8Tail(const std::string& text);

// Length of the longest suffix of `text` that is a proper prefix of one of `stops`: text that may still turn
// into a stop string and so must be held back from the stream.
size_t PartialStopSuffix(const std::string& text, const std::vector<std::string>& stops);

// Position of the earliest complete stop string in `text` at or after `from`, or npos.
size_t FindStop(const std::string& text, const std::vector<std::string>& stops, size_t from);

}  // namespace tea
