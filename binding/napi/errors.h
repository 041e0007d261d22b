// Coded errors: every failure crossing into JS is an Error with a stable `code` (ERR_*).
#pragma once

#include <napi.h>

#include <string>

#include "error.h"

namespace tea {


Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);

// Runs a bound method body and converts every C++ exception into a coded JS exception. node-addon-api only
// translates Napi::Error; anything else escaping a callback would terminate the process.
template <typename Fn>
Napi::Value Guard(const Napi::CallbackInfo& info, Fn&& fn) {
  Napi::Env env = info.Env();
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const TeaError& e) {
    throw MakeError(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw MakeError(env, "ERR_OUT_OF_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw MakeError(env, CodeOf(e), e.what());
  } catch (...) {
    throw MakeError(env, "ERR_INTERNAL", "unknown native error");
  }
}

}  // namespace tea
