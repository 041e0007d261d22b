// Backend modules of the prebuild layout (TEA_DYNAMIC_BACKENDS): which CPU variant and GPU backends to load
// from the folder beside the addon. In the default static build, everything is linked in and this only reports.
#pragma once

#include <string>
#include <vector>

namespace tea {

struct BackendReport {
  bool dynamic = false;         // built with TEA_DYNAMIC_BACKENDS
  std::string cpuVariant;       // "static", or the chosen module's variant name ("haswell", "zen4", ...)
  std::vector<std::string> cpuRejected;  // variants the CPU advertises but the OS has not enabled
  std::vector<std::string> gpuLoaded;    // GPU backends registered ("CUDA", "Vulkan", ...)
  std::vector<std::string> gpuFailed;    // "<file>: <reason>" for GPU modules that did not load
  std::vector<std::string> devices;      // "<name>: <description>" of every registered device
};

// Loads the backends once per process (ggml's backend registry is process-wide); later calls return the first
// report. `gpu` is "auto" (every GPU module found), "none", or one name ("cuda", "vulkan", "metal", ...).
// `forcedCpuVariant` overrides the choice when not empty. `dirs` are searched in order.
BackendReport LoadBackends(const std::vector<std::string>& dirs, const std::string& gpu, const std::string& forcedCpuVariant);

// The variant names whose instructions this machine can execute, checked against what the OS enabled (XCR0,
// and the AMX permission request on Linux), not only what CPUID advertises.
bool OsSupportsVariant(const std::string& variant);

}  // namespace tea
