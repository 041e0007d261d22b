#include "log.h"

#include <atomic>
#include <cstdio>

#include "llama.h"

namespace tea {

namespace {

std::atomic<int> gLevel{0};
// Per thread, so concurrent loads never see each other's failure reasons (cleared by TakeLastError).
thread_local std::string tLastError;

int Rank(ggml_log_level level) {
  switch (level) {
    case GGML_LOG_LEVEL_ERROR: return 1;
    case GGML_LOG_LEVEL_WARN: return 2;
    case GGML_LOG_LEVEL_INFO: return 3;
    case GGML_LOG_LEVEL_DEBUG: return 4;
    default: return 0;  // GGML_LOG_LEVEL_CONT and NONE: continuation of the previous line
  }
}

thread_local int tLastRank = 3;

void OnLog(ggml_log_level level, const char* text, void*) {
  int rank = Rank(level);
  if (rank == 0) rank = tLastRank;
  tLastRank = rank;
  if (rank == 1 && text != nullptr && tLastError.size() < 4096) {
    std::string line = text;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) tLastError += (tLastError.empty() ? "" : "; ") + line;
  }
  if (rank <= gLevel.load(std::memory_order_relaxed) && text != nullptr) std::fputs(text, stderr);
}

}  // namespace

void InstallLogger() { llama_log_set(OnLog, nullptr); }

void SetLogLevel(int level) { gLevel.store(level); }

std::string TakeLastError() {
  std::string message = std::move(tLastError);
  tLastError.clear();
  return message;
}

}  // namespace tea
