#include "special_split.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "error.h"

namespace tea {

namespace {

// As the partition tests it (isspace on the byte, C locale).
bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Whether a proper prefix of `s` is also its suffix (KMP's failure function at the end): then two occurrences
// can overlap.
bool HasBorder(const std::string& s) {
  std::vector<size_t> fail(s.size(), 0);
  for (size_t i = 1, k = 0; i < s.size(); ++i) {
    while (k > 0 && s[i] != s[k]) k = fail[k - 1];
    if (s[i] == s[k]) ++k;
    fail[i] = k;
  }
  return !s.empty() && fail.back() > 0;
}

using Entry = std::pair<size_t, uint32_t>;
const auto kLater = std::greater<Entry>();

}  // namespace

SpecialSplitter::SpecialSplitter(const llama_vocab* vocab, bool parseSpecial) {
  const int32_t n = llama_vocab_n_tokens(vocab);
  for (llama_token id = 0; id < n; ++id) {
    const auto attr = llama_vocab_get_attr(vocab, id);
    // The partition's own selection: its cache holds control, user-defined and unknown tokens, and without
    // parse_special it skips control and unknown ones.
    if (!(attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN))) continue;
    if (!parseSpecial && (attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN))) continue;
    const char* text = llama_vocab_get_text(vocab, id);
    if (text == nullptr || *text == '\0') continue;
    Token token;
    token.text = text;
    token.lstrip = (attr & LLAMA_TOKEN_ATTR_LSTRIP) != 0;
    token.selfOverlaps = HasBorder(token.text);
    token.byteRun = std::all_of(token.text.begin(), token.text.end(), [&](char c) { return c == token.text[0]; });
    anyLstrip_ = anyLstrip_ || token.lstrip;
    anyRstrip_ = anyRstrip_ || (attr & LLAMA_TOKEN_ATTR_RSTRIP) != 0;
    tokens_.push_back(std::move(token));
  }
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const Token& a, const Token& b) { return a.text.size() > b.text.size(); });
}

SpecialSplitter::Cursor::Cursor(const SpecialSplitter& splitter, std::string_view text) : splitter_(splitter), text_(text) {
  heap_.reserve(splitter_.tokens_.size());
  for (uint32_t i = 0; i < splitter_.tokens_.size(); ++i) Push(i, 0);
}

void SpecialSplitter::Cursor::Push(size_t index, size_t from) {
  const size_t pos = text_.find(splitter_.tokens_[index].text, from);
  if (pos == std::string_view::npos) return;
  heap_.emplace_back(pos, static_cast<uint32_t>(index));
  std::push_heap(heap_.begin(), heap_.end(), kLater);
}

size_t SpecialSplitter::Cursor::Next(size_t from, size_t maxOccurrences) {
  size_t seen = 0;
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    const auto [pos, index] = heap_.back();
    heap_.pop_back();
    if (pos < from) {
      Push(index, from);
      continue;
    }
    Push(index, pos + 1);
    if (SafeCut(pos, index)) return pos;
    if (++seen > maxOccurrences) {
      throw TeaError("ERR_INVALID_ARGUMENT",
                     "the text holds more than " + std::to_string(maxOccurrences) +
                         " overlapping special-token markups with no place to cut them apart (after byte " + std::to_string(from) +
                         "), which llama.cpp's tokenizer takes quadratic time over: tokenize it in smaller parts");
    }
  }
  return std::string_view::npos;
}

// Rule 1: an occurrence of another token at least as long as tokens_[index] overlaps [p, p + its length).
bool SpecialSplitter::Cursor::Overlapped(size_t p, size_t index) const {
  const auto& tokens = splitter_.tokens_;
  const size_t len = tokens[index].text.size();
  const size_t q = p + len;
  for (size_t u = 0; u < tokens.size() && tokens[u].text.size() >= len; ++u) {
    if (u == index) continue;
    const size_t ulen = tokens[u].text.size();
    const size_t lo = p + 1 >= ulen ? p + 1 - ulen : 0;          // first start that reaches p
    const size_t hi = std::min(text_.size(), q + ulen - 1);       // one past the last end that starts before q
    if (hi - lo >= ulen && text_.substr(lo, hi - lo).find(tokens[u].text) != std::string_view::npos) return true;
  }
  return false;
}

bool SpecialSplitter::Cursor::SafeCut(size_t p, size_t index) {
  const Token& t = splitter_.tokens_[index];
  const size_t len = t.text.size();
  const size_t q = p + len;
  if (p == 0) return false;
  if (splitter_.anyRstrip_ && IsSpace(text_[p])) return false;
  if (splitter_.anyLstrip_ && IsSpace(text_[q - 1])) return false;
  if (t.lstrip && IsSpace(text_[p - 1])) return false;
  if (Overlapped(p, index)) return false;
  if (!t.selfOverlaps) return true;
  // Rule 2: an occurrence of t starting in (p - len, p) would be matched first.
  const size_t lo = p + 1 >= len ? p + 1 - len : 0;
  if (text_.substr(lo, p - lo + len - 1).find(t.text) == std::string_view::npos) return true;
  if (!t.byteRun) return false;

  // A run of one byte: the scan matches t at the run's start (nothing of t starts before it), then every len
  // bytes, as long as nothing longer overlaps those steps. The run and the steps each token has checked in it are
  // kept, as the next cuts usually fall further into the same run.
  const char c = t.text[0];
  bool same = runStart_ != std::string_view::npos && runByte_ == c && runStart_ < p && runKnown_ <= p;
  for (size_t i = same ? runKnown_ : p; same && i < p; ++i) same = text_[i] == c;
  if (same) {
    runKnown_ = p;
  } else {
    size_t r = p;
    while (r > 0 && text_[r - 1] == c) --r;
    runStart_ = r;
    runByte_ = c;
    runKnown_ = p;
    ++runGeneration_;
  }
  if ((p - runStart_) % len != 0) return false;
  if (verifiedGeneration_.size() != splitter_.tokens_.size()) {
    verifiedGeneration_.assign(splitter_.tokens_.size(), 0);
    verified_.assign(splitter_.tokens_.size(), 0);
  }
  size_t& verified = verified_[index];
  if (verifiedGeneration_[index] != runGeneration_) {
    verifiedGeneration_[index] = runGeneration_;
    verified = runStart_;
  }
  for (size_t m = verified; m < p; m += len) {
    if (Overlapped(m, index)) return false;  // stays unverified: it fails again, at once, next time
    verified = m + len;
  }
  return true;
}

}  // namespace tea
