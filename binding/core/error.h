// TeaError: a failure with a stable code (ERR_*). Thrown anywhere in the binding (any thread); the N-API
// boundary (napi/errors.h) turns it into a JS Error with `code`, the scheduler into an error event.
#pragma once

#include <new>
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

// llama.cpp's RPC client throws std::runtime_error with this prefix when a server is lost (our patch,
// patches/rpc-lost-server.patch, in place of its GGML_ABORT); it may also reach us inside a logged message.
inline bool IsRpcLost(const std::string& text) { return text.find("ggml-rpc: server lost: ") != std::string::npos; }

// The stable code of any exception caught at a boundary (scheduler thread, workers, N-API calls): the one place
// that maps foreign exceptions to codes.
inline std::string CodeOf(const std::exception& e) {
  if (const auto* coded = dynamic_cast<const TeaError*>(&e)) return coded->code();
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return "ERR_OUT_OF_MEMORY";
  if (IsRpcLost(e.what())) return "ERR_RPC_CONNECTION";
  return "ERR_INTERNAL";
}

}  // namespace tea
