#include "state_file.h"

#include <algorithm>
#include <cstring>

#include "error.h"

namespace tea {

namespace {

constexpr char kMagic[8] = {'T', 'E', 'A', 'S', 'T', 'A', 'T', 'E'};
constexpr uint32_t kLlamaSeqMagic = 0xaf143cd8;  // llama-context.cpp's io_magic, first in every sequence state

[[noreturn]] void Invalid(const std::string& why) { throw TeaError("ERR_INVALID_STATE", "invalid state file: " + why); }

template <typename T>
void Put(std::vector<uint8_t>& out, T value) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only, as llama.cpp's own state format
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

// Reads fixed-size values from a bounded buffer; running off its end is an invalid file.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const char* what) : data_(data), size_(size), what_(what) {}
  template <typename T>
  T Get() {
    T value;
    Need(sizeof(T));
    std::memcpy(&value, data_ + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  void Need(size_t n) const {
    if (n > size_ - at_) Invalid(std::string(what_) + " ends early (truncated)");
  }
  size_t at() const { return at_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
  const char* what_;
};

uint64_t HashString(const std::string& s, uint64_t h) {
  h = Fnv1a64(reinterpret_cast<const uint8_t*>(s.data()), s.size(), h);
  const uint8_t separator = 0;
  return Fnv1a64(&separator, 1, h);
}

template <typename T>
uint64_t HashValue(T value, uint64_t h) {
  return Fnv1a64(reinterpret_cast<const uint8_t*>(&value), sizeof(T), h);
}

std::string MetaString(int32_t (*get)(const llama_model*, int32_t, char*, size_t), const llama_model* model, int32_t i) {
  std::vector<char> buf(256);
  int32_t n = get(model, i, buf.data(), buf.size());
  if (n < 0) return "";
  if (static_cast<size_t>(n) >= buf.size()) {
    buf.resize(static_cast<size_t>(n) + 1);
    n = get(model, i, buf.data(), buf.size());
  }
  return std::string(buf.data(), static_cast<size_t>(std::max(0, n)));
}

}  // namespace

uint64_t Fnv1a64(const uint8_t* data, size_t size, uint64_t hash) {
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

uint64_t ModelFingerprint(const llama_model* model) {
  uint64_t h = 0xcbf29ce484222325ull;
  char desc[256] = {0};
  llama_model_desc(model, desc, sizeof(desc));
  h = HashString(desc, h);
  h = HashValue<uint64_t>(llama_model_n_params(model), h);
  h = HashValue<uint64_t>(llama_model_size(model), h);
  h = HashValue<int32_t>(llama_model_n_embd(model), h);
  h = HashValue<int32_t>(llama_model_n_layer(model), h);
  h = HashValue<int32_t>(llama_model_n_head(model), h);
  h = HashValue<int32_t>(llama_model_n_head_kv(model), h);
  h = HashValue<int32_t>(llama_vocab_n_tokens(llama_model_get_vocab(model)), h);
  const int32_t count = llama_model_meta_count(model);
  for (int32_t i = 0; i < count; ++i) {
    h = HashString(MetaString(&llama_model_meta_key_by_index, model, i), h);
    h = HashString(MetaString(&llama_model_meta_val_str_by_index, model, i), h);
  }
  return h;
}

std::vector<uint8_t> EncodeState(uint64_t fingerprint, const std::vector<llama_token>& tokens, const std::string& meta,
                                 const std::vector<uint8_t>& payload) {
  if (meta.size() > kStateMaxMetaBytes) throw TeaError("ERR_INVALID_ARGUMENT", "state metadata is larger than 64 MiB");
  std::vector<uint8_t> out;
  out.reserve(kStateHeaderBytes + tokens.size() * 4 + meta.size() + payload.size());
  out.insert(out.end(), kMagic, kMagic + sizeof(kMagic));
  Put<uint32_t>(out, kStateVersion);
  Put<uint32_t>(out, 0);
  Put<uint64_t>(out, fingerprint);
  Put<uint32_t>(out, static_cast<uint32_t>(tokens.size()));
  Put<uint32_t>(out, static_cast<uint32_t>(meta.size()));
  Put<uint64_t>(out, payload.size());
  const size_t checksumAt = out.size();
  Put<uint64_t>(out, 0);
  for (llama_token t : tokens) Put<int32_t>(out, t);
  out.insert(out.end(), meta.begin(), meta.end());
  out.insert(out.end(), payload.begin(), payload.end());
  uint64_t sum = Fnv1a64(out.data(), checksumAt);
  sum = Fnv1a64(out.data() + kStateHeaderBytes, out.size() - kStateHeaderBytes, sum);
  std::memcpy(out.data() + checksumAt, &sum, sizeof(sum));
  return out;
}

DecodedState DecodeState(const uint8_t* data, size_t size) {
  Reader r(data, size, "the header");
  r.Need(sizeof(kMagic));
  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) Invalid("not a tea-llama state file (wrong magic)");
  r.Get<uint64_t>();
  const uint32_t version = r.Get<uint32_t>();
  if (version != kStateVersion) Invalid("version " + std::to_string(version) + " is not the supported " + std::to_string(kStateVersion));
  if (r.Get<uint32_t>() != 0) Invalid("unknown flags");
  DecodedState out;
  out.fingerprint = r.Get<uint64_t>();
  const uint32_t nTokens = r.Get<uint32_t>();
  const uint32_t metaBytes = r.Get<uint32_t>();
  const uint64_t payloadBytes = r.Get<uint64_t>();
  const size_t checksumAt = r.at();
  const uint64_t checksum = r.Get<uint64_t>();
  if (metaBytes > kStateMaxMetaBytes) Invalid("metadata of " + std::to_string(metaBytes) + " bytes");
  // Sizes are compared in 64 bits before anything is allocated: a huge count is a short file, not an allocation.
  const uint64_t expected = static_cast<uint64_t>(kStateHeaderBytes) + 4ull * nTokens + metaBytes + payloadBytes;
  if (payloadBytes > size || expected != size) {
    Invalid(std::string(expected > size ? "it is truncated" : "it has trailing bytes") + " (" + std::to_string(size) +
            " bytes, the header says " + std::to_string(expected) + ")");
  }
  uint64_t sum = Fnv1a64(data, checksumAt);
  sum = Fnv1a64(data + kStateHeaderBytes, size - kStateHeaderBytes, sum);
  if (sum != checksum) Invalid("checksum mismatch (the file was modified or damaged)");
  if (nTokens == 0) Invalid("it holds no tokens");
  out.tokens.resize(nTokens);
  std::memcpy(out.tokens.data(), data + kStateHeaderBytes, 4ull * nTokens);
  const size_t metaAt = kStateHeaderBytes + 4ull * nTokens;
  out.meta.assign(reinterpret_cast<const char*>(data + metaAt), metaBytes);
  out.payload = data + metaAt + metaBytes;
  out.payloadSize = static_cast<size_t>(payloadBytes);
  return out;
}

void CheckPayload(const uint8_t* payload, size_t size, const std::vector<llama_token>& tokens, bool cellExt) {
  Reader r(payload, size, "the sequence state");
  if (r.Get<uint32_t>() != kLlamaSeqMagic) Invalid("the sequence state has the wrong magic");
  r.Get<int32_t>();  // the sequence it was saved from: restored into another one
  if (r.Get<uint32_t>() != 1) Invalid("the sequence state is not of one KV stream");
  const uint32_t cells = r.Get<uint32_t>();
  if (cells != tokens.size()) {
    Invalid("the sequence state holds " + std::to_string(cells) + " cells for " + std::to_string(tokens.size()) + " tokens");
  }
  // Cells come in cache order, which a unified cache shared by several sequences need not keep in position order:
  // the positions must be 0..n-1, each once.
  std::vector<bool> seen(cells, false);
  for (uint32_t i = 0; i < cells; ++i) {
    const int32_t pos = r.Get<int32_t>();
    const uint32_t seqs = r.Get<uint32_t>();
    if (pos < 0 || static_cast<uint32_t>(pos) >= cells || seen[static_cast<size_t>(pos)] || seqs != 1) {
      Invalid("cell " + std::to_string(i) + " (position " + std::to_string(pos) + ") is not one of positions 0.." +
              std::to_string(cells - 1) + ", once each, of one sequence");
    }
    seen[static_cast<size_t>(pos)] = true;
    if (cellExt) {
      r.Get<int32_t>();  // M-RoPE x
      r.Get<int32_t>();  // M-RoPE y
      if (r.Get<int32_t>() != tokens[static_cast<size_t>(pos)]) Invalid("cell " + std::to_string(i) + " holds another token");
    }
    r.Get<int32_t>();  // its sequence id, replaced by the destination's
  }
  // Then the rows: llama.cpp reads v_trans, the layer count and per layer a type and a row size, each compared
  // with its own cache, every read bounds-checked (it throws at the buffer's end, which restore reports).
  r.Need(8);
}

std::string StateUnsupported(const llama_model* model) {
  if (llama_model_is_recurrent(model) || llama_model_is_hybrid(model)) return "recurrent and hybrid models";
  if (llama_model_n_swa(model) > 0) return "models with a sliding-window attention cache";
  return "";
}

bool StateCellExt(const llama_model* model) {
  const llama_rope_type rope = llama_model_rope_type(model);
  return rope == LLAMA_ROPE_TYPE_MROPE || rope == LLAMA_ROPE_TYPE_IMROPE || rope == LLAMA_ROPE_TYPE_VISION;
}

}  // namespace tea
