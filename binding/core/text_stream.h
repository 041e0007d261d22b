// TextStream: token pieces in, text safe to show out. Holds back a partial UTF-8 character and any tail that may
// still grow into a stop string, so neither a broken character nor any part of a stop string ever reaches the
// caller. Owned by one slot; used only by the scheduler thread.
#pragma once

#include <string>
#include <vector>

namespace tea {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {}) : stops_(std::move(stops)) {}

  // Adds a token's piece; returns the text that became safe to emit (often empty). After a stop string was
  // found, stopped() is true and the text before it has been returned; later pieces are ignored.
  std::string Push(const std::string& piece);
  // Everything still held back (at the end of the generation): a trailing partial stop-string prefix is real text.
  std::string Finish();

  bool stopped() const { return stopped_; }
  // The stop string found (the longest of those that match there), once stopped().
  const std::string& stopWord() const { return stopWord_; }
  // All text emitted so far (Push and Finish results concatenated).
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string text_;
  bool stopped_ = false;
  std::string stopWord_;
};

}  // namespace tea
