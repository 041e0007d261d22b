#include "text_stream.h"

#include <algorithm>

#include "text_utils.h"

namespace tea {

std::string TextStream::Push(const std::string& piece) {
  if (stopped_) return {};
  held_ += piece;
  if (!stops_.empty()) {
    const size_t at = FindStop(held_, stops_, 0);
    if (at != std::string::npos) {
      for (const std::string& stop : stops_) {
        if (held_.compare(at, stop.size(), stop) == 0 && stop.size() > stopWord_.size()) stopWord_ = stop;
      }
      held_.resize(at);
      stopped_ = true;
      std::string out = std::move(held_);
      held_.clear();
      text_ += out;
      return out;
    }
  }
  const size_t hold = std::max(PartialStopSuffix(held_, stops_), IncompleteUtf8Tail(held_));
  if (held_.size() <= hold) return {};
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  text_ += out;
  return out;
}

std::string TextStream::Finish() {
  std::string out = std::move(held_);
  held_.clear();
  text_ += out;
  return out;
}

}  // namespace tea
