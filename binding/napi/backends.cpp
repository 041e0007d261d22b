#include "backends.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <mutex>

#include "ggml-backend.h"
#include "log.h"

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(_MSC_VER)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tea {

namespace fs = std::filesystem;

namespace {

#if defined(_WIN32)
const char* kPrefix = "ggml-";
const char* kExtension = ".dll";
#else
const char* kPrefix = "libggml-";
const char* kExtension = ".so";
#endif

// Returns the module's ggml_backend_score() (0: unusable here), or -1 when it cannot be opened.
int ScoreModule(const fs::path& path) {
  using ScoreFn = int (*)();
#if defined(_WIN32)
  HMODULE handle = LoadLibraryW(path.wstring().c_str());
  if (!handle) return -1;
  auto score = reinterpret_cast<ScoreFn>(GetProcAddress(handle, "ggml_backend_score"));
  const int result = score ? score() : 0;
  FreeLibrary(handle);
#else
  void* handle = dlopen(path.string().c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return -1;
  auto score = reinterpret_cast<ScoreFn>(dlsym(handle, "ggml_backend_score"));
  const int result = score ? score() : 0;
  dlclose(handle);
#endif
  return result;
}

#if defined(__x86_64__) && !defined(_MSC_VER)
uint64_t Xcr0() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // no OSXSAVE: no extended state
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool AmxUsable() {
  if (((Xcr0() >> 17) & 3) != 3) return false;  // TILECFG and TILEDATA state
#if defined(__linux__)
  // Linux hands out AMX tile state only on request; a refusal means AMX instructions would fault.
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
  return true;
#endif
}
#endif

}  // namespace

bool OsSupportsVariant(const std::string& variant) {
#if defined(__x86_64__) && !defined(_MSC_VER)
  static const char* avx512Variants[] = {"skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4", "sapphirerapids"};
  const bool needsAvx512 = std::find(std::begin(avx512Variants), std::end(avx512Variants), variant) != std::end(avx512Variants);
  if (needsAvx512 && (Xcr0() & 0xE6) != 0xE6) return false;  // opmask, ZMM_Hi256, Hi16_ZMM, SSE and AVX state
  const bool needsAvx = variant != "x64" && variant != "sse42";
  if (needsAvx && (Xcr0() & 0x6) != 0x6) return false;
  if (variant == "sapphirerapids" && !AmxUsable()) return false;
#else
  (void)variant;
#endif
  return true;
}

BackendReport LoadBackends(const std::vector<std::string>& dirs, const std::string& gpu, const std::string& forcedCpuVariant) {
  // ggml's registry is process-wide, so this runs once for every Node environment of the process.
  static std::mutex mutex;
  static bool done = false;
  static BackendReport report;
  std::lock_guard<std::mutex> lock(mutex);
  if (done) return report;
  done = true;

#if defined(TEA_DYNAMIC_BACKENDS)
  report.dynamic = true;
  const std::string cpuPrefix = std::string(kPrefix) + "cpu";
  fs::path bestCpu;
  int bestScore = 0;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() != kExtension || name.rfind(kPrefix, 0) != 0) continue;
      const std::string stem = entry.path().stem().string().substr(std::string(kPrefix).size());  // "cpu-haswell", "cuda"
      if (stem.rfind("cpu", 0) == 0) {
        const std::string variant = stem.size() > 4 ? stem.substr(4) : "";
        // A forced variant still has to pass both checks: nothing runs code this machine cannot execute.
        if (!forcedCpuVariant.empty() && variant != forcedCpuVariant) continue;
        const int score = ScoreModule(entry.path());
        if (score <= 0) {
          if (!forcedCpuVariant.empty()) report.cpuRejected.push_back(variant);
          continue;
        }
        if (!OsSupportsVariant(variant)) {
          report.cpuRejected.push_back(variant);
          continue;
        }
        if (score > bestScore) bestScore = score, bestCpu = entry.path();
        continue;
      }
      // The RPC client: devices only where a model names its servers (loadModel's rpcServers), so always loaded.
      if (stem == "rpc") {
        ggml_backend_load(entry.path().string().c_str());
        continue;
      }
      static const char* gpuModules[] = {"cuda", "vulkan", "metal", "hip", "sycl", "musa", "opencl", "cann"};
      if (std::find(std::begin(gpuModules), std::end(gpuModules), stem) == std::end(gpuModules)) continue;  // ggml-base, ...
      if (gpu == "none" || (gpu != "auto" && stem != gpu)) continue;
      TakeLastError();
      ggml_backend_reg_t reg = ggml_backend_load(entry.path().string().c_str());
      if (reg) {
        report.gpuLoaded.push_back(ggml_backend_reg_name(reg));
      } else {
        const std::string reason = TakeLastError();
        report.gpuFailed.push_back(name + ": " + (reason.empty() ? "could not be loaded" : reason));
      }
    }
  }
  if (!bestCpu.empty() && ggml_backend_load(bestCpu.string().c_str())) {
    const std::string stem = bestCpu.stem().string().substr(cpuPrefix.size());
    report.cpuVariant = stem.empty() ? "default" : stem.substr(1);
  }
#else
  (void)dirs;
  (void)gpu;
  (void)forcedCpuVariant;
  report.cpuVariant = "static";
#endif
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    report.devices.push_back(std::string(ggml_backend_dev_name(dev)) + ": " + ggml_backend_dev_description(dev));
  }
  return report;
}

}  // namespace tea
