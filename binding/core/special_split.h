// Where a long text may be cut so that tokenizing the pieces one by one gives exactly llama.cpp's tokens for the
// whole text.
//
// Why: llama.cpp's tokenizer first carves special tokens out of the text (llama_vocab::impl::tokenizer_st_partition),
// and each match there walks the fragment list from its head (std::distance and std::next over a forward_list):
// time grows with the square of the special tokens in one call (80,000 "<s></s>" pairs: about a minute). Cut into
// pieces of about a kilobyte, each call sees few of them and the whole stays linear.
//
// A cut is made just before an occurrence of a special token t at [p, q) that llama.cpp certainly matches as t,
// whatever the rest of the text, and whose neighbours cannot reach across p:
//   1. no occurrence of another active special token at least as long as t overlaps [p, q) (the partition takes
//      tokens longest first, so nothing can take these bytes before t does, and no match straddles p);
//   2. no occurrence of t itself starts inside (p - |t|, p); or t is a run of one byte (a whitespace token such as
//      gpt-neox's "    ") and p is a whole number of |t| from the start of that run, with every earlier |t|-step
//      in the run meeting 1 (the partition's left-to-right scan then matches each step);
//   3. when some active token strips whitespace to its right (RSTRIP), text[p] is not whitespace, and when some
//      strips to its left (LSTRIP), text[q-1] is not: no strip can eat into [p, q);
//   4. when t itself strips to its left, text[p-1] is not whitespace (nothing on the left of p to strip).
// Then the fragments of the whole are the fragments of the pieces, and every tokenizer session is per fragment.
// The tokenizer's BOS/EOS go once around the whole (binding/core/text_utils.cpp).
//
// Thread-safe: only reads the vocabulary and the text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llama.h"

namespace tea {

class SpecialSplitter {
 public:
  // The special tokens llama.cpp's partition looks for (control, user-defined and unknown tokens; without
  // parseSpecial, user-defined ones only).
  SpecialSplitter(const llama_vocab* vocab, bool parseSpecial);

  bool empty() const { return tokens_.empty(); }

  // Iterates cut points of one text, in increasing order.
  class Cursor {
   public:
    Cursor(const SpecialSplitter& splitter, std::string_view text);
    // The first cut at or after `from`, or npos when there is none before the end of the text. Throws
    // ERR_INVALID_ARGUMENT when more than `maxOccurrences` special-token occurrences lie between `from` and the
    // next cut: text built so that no cut is possible, which llama.cpp would take quadratic time over.
    size_t Next(size_t from, size_t maxOccurrences);

   private:
    bool Overlapped(size_t p, size_t index) const;
    bool SafeCut(size_t p, size_t index);
    void Push(size_t index, size_t from);

    const SpecialSplitter& splitter_;
    std::string_view text_;
    // Min-heap of (next occurrence, token index): one entry per token that still occurs.
    std::vector<std::pair<size_t, uint32_t>> heap_;
    // Run rule (2): the byte run last seen ([runStart_, runKnown_) all runByte_), and per token how far its steps
    // in that run are known to meet rule 1 (valid where verifiedGeneration_ is runGeneration_).
    size_t runStart_ = std::string_view::npos;
    size_t runKnown_ = 0;
    char runByte_ = 0;
    uint64_t runGeneration_ = 0;
    std::vector<uint64_t> verifiedGeneration_;
    std::vector<size_t> verified_;
  };

 private:
  struct Token {
    std::string text;
    bool lstrip = false;
    bool selfOverlaps = false;  // a proper prefix equals a suffix: occurrences can overlap each other
    bool byteRun = false;       // every byte the same
  };
  std::vector<Token> tokens_;  // longest first, as llama.cpp orders them
  bool anyLstrip_ = false;
  bool anyRstrip_ = false;
};

}  // namespace tea
