// Per-environment instance data (main thread, worker_threads each get their own): class constructors.
#pragma once

#include <napi.h>

namespace tea {

struct AddonData {
  Napi::FunctionReference abortFlagClass;
  Napi::FunctionReference modelClass;
  Napi::FunctionReference contextClass;
  Napi::FunctionReference loraClass;

  static AddonData* Of(Napi::Env env) { return env.GetInstanceData<AddonData>(); }
};

}  // namespace tea
