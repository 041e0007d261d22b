#!/usr/bin/env bash
# Assembles the test models folder the tests expect beside the checkout (../shared/models on our own machines):
# the tokenizer vocab files and their vectors come with the vendored llama.cpp source; stories260K is downloaded.
set -euo pipefail
dest="${1:?usage: test-models.sh DEST}"
mkdir -p "$dest"
cp vendor/llama.cpp/models/ggml-vocab-phi-3.gguf* vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf* \
   vendor/llama.cpp/models/ggml-vocab-bert-bge.gguf* "$dest/"
if [ ! -f "$dest/stories260K.gguf" ]; then
  curl -fsSL --retry 3 -o "$dest/stories260K.gguf" \
    https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf
fi
echo "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d  $dest/stories260K.gguf" | sha256sum -c -
