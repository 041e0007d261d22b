// Vocabulary checks that llama.cpp itself does not make. A vocabulary that breaks one of these rules makes
// llama.cpp abort the whole process (a GGML_ASSERT) or loop forever inside llama_tokenize, so such a file is
// refused with ERR_MODEL_INVALID instead. Found by the fuzz tests (test/reliability/fuzz-gguf.test.ts).
#pragma once

#include <string>

#include "llama.h"

namespace tea {

// Before loading: the token texts must be unique (llama.cpp asserts id_to_token.size() == token_to_id.size()), and
// a WordPiece vocabulary must have no byte tokens. Reads the key/value section with gguf.h, exactly as llama.cpp's
// loader will. Throws TeaError.
void CheckTokenTable(const std::string& path);

// After loading: what tokenization needs from the vocabulary (a tokenizer, the special tokens it adds, and for
// RWKV every first byte of a token as a token of its own). Throws TeaError; the caller frees the model.
void CheckVocabulary(const llama_vocab* vocab);

}  // namespace tea
