// llama.cpp/ggml log routing. llama.cpp's logger is process-wide by design (llama_log_set takes no context), so
// the level threshold is the one process-wide setting here; messages at or above it go to stderr.
#pragma once

#include <string>

namespace tea {

void InstallLogger();
// 0 none, 1 error, 2 warn, 3 info, 4 debug.
void SetLogLevel(int level);
// The errors llama.cpp logged on the calling thread since the last call, joined: the reason behind a failed load.
std::string TakeLastError();

}  // namespace tea
