// Saved sequence state: our container around llama.cpp's per-sequence state (llama_state_seq_get_data).
//
// A state file is untrusted input. Its header (magic, version, a fingerprint of the model, the token count and a
// checksum of everything after it) is checked before llama.cpp sees a byte, so a truncated, mutated or foreign
// file is ERR_INVALID_STATE. A file with a valid header (crafted, or checksummed after a mutation) is still walked
// by CheckPayload before llama.cpp parses it: the cell table must be exactly the one a saved sequence has (one
// stream, one cell per token, positions 0..n-1 once each, one sequence each), which leaves llama.cpp only its own checked
// reads of the tensor rows (layer count, types and row sizes are compared, every read is bounds-checked).
//
// Layout (little-endian):
//   "TEASTATE"  u32 version  u32 flags(0)  u64 fingerprint  u32 nTokens  u32 metaBytes  u64 payloadBytes
//   u64 checksum (FNV-1a 64 of the header before it and of everything after it)
//   i32 tokens[nTokens]  meta (UTF-8, the caller's: a chat session's messages)  payload (llama.cpp's bytes)
//
// Plain functions without state: any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace tea {

constexpr uint32_t kStateVersion = 1;
constexpr size_t kStateHeaderBytes = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8;
constexpr uint32_t kStateMaxMetaBytes = 64u << 20;

uint64_t Fnv1a64(const uint8_t* data, size_t size, uint64_t hash = 0xcbf29ce484222325ull);

// What identifies a model for a state file: its description, sizes, shape and every metadata pair. Two files
// with equal metadata and different weights (re-trained, or random synthetic ones) share a fingerprint.
uint64_t ModelFingerprint(const llama_model* model);

std::vector<uint8_t> EncodeState(uint64_t fingerprint, const std::vector<llama_token>& tokens, const std::string& meta,
                                 const std::vector<uint8_t>& payload);

struct DecodedState {
  uint64_t fingerprint = 0;
  std::vector<llama_token> tokens;
  std::string meta;
  const uint8_t* payload = nullptr;  // inside the decoded buffer
  size_t payloadSize = 0;
};

// Checks the header, sizes and checksum; throws TeaError ERR_INVALID_STATE.
DecodedState DecodeState(const uint8_t* data, size_t size);

// Checks llama.cpp's sequence payload against the tokens it should hold (see the top of this file); `cellExt`:
// the cache stores a 12-byte extension per cell (M-RoPE models), whose token must be the cell's token. Throws
// TeaError ERR_INVALID_STATE.
void CheckPayload(const uint8_t* payload, size_t size, const std::vector<llama_token>& tokens, bool cellExt);

// Whether llama.cpp's state of one sequence of this model is a single KV cache that CheckPayload understands:
// not a recurrent or hybrid model, no sliding-window cache beside the full one. Empty when supported, else why not.
std::string StateUnsupported(const llama_model* model);

// Whether this model's KV cells carry the extension CheckPayload must skip (M-RoPE positions).
bool StateCellExt(const llama_model* model);

}  // namespace tea
