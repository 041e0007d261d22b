// Coded errors: every failure crossing into JS is an Error with a stable `code` (ERR_*).
#pragma once

#include <napi.h>

#include <stdexcept>
#include <string>

namespace tea {

// Thrown anywhere in the binding (main or worker thread); the boundary turns it into a JS Error with `code`.
class TeaError : public std::runtime_error {
 public:
  TeaError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

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
    throw MakeError(env, "ERR_INTERNAL", e.what());
  } catch (...) {
    throw MakeError(env, "ERR_INTERNAL", "unknown native error");
  }
}

}  // namespace tea
