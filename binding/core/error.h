// TeaError: a failure with a stable code (ERR_*). Thrown anywhere in the binding (any thread); the N-API
// boundary (napi/errors.h) turns it into a JS Error with `code`, the scheduler into an error event.
#pragma once

#include <stdexcept>
#include <string>

namespace tea {

class TeaError : public std::runtime_error {
 public:
  TeaError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace tea
