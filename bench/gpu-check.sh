#!/usr/bin/env bash
# The GPU check of issue 17, for a machine with an NVIDIA GPU (about 15 minutes on 16 cores): the addon and
# llama.cpp's tools built with CUDA for this GPU's architecture only, stories260K and a 1B-shaped synthetic model
# fully offloaded, their greedy text compared with the CPU build's, tg128/pp512 against llama-bench built the same
# way, and 8 concurrent clients against llama-server -np 8. Figures and commands: bench/results/gpu-<time>.md.
#
#   bench/gpu-check.sh            (in a clone after `npm install`; needs nvcc, nvidia-smi, ccache optional)
#
# It rebuilds build/ twice (CPU first, for the reference texts, then CUDA) and leaves the CUDA build there:
# run `node scripts/build-native.mjs --tools` afterwards to get the CPU build back.
set -euo pipefail
cd "$(dirname "$0")/.."

for cmd in nvidia-smi nvcc node; do
  command -v "$cmd" >/dev/null || { echo "gpu-check: $cmd is not on PATH" >&2; exit 1; }
done
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
[ -n "$cap" ] || { echo "gpu-check: nvidia-smi gave no compute capability" >&2; exit 1; }
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export CMAKE_BUILD_PARALLEL_LEVEL
stamp=$(date -u +%Y%m%d-%H%M)
models=(../shared/models/stories260K.gguf)
echo "gpu-check: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), sm_$cap, $CMAKE_BUILD_PARALLEL_LEVEL cores" >&2

# 1. The CPU build (usually already there: ccache makes this quick) and the 1B-shaped model, then the CPU texts.
time node scripts/build-native.mjs --tools
npm run --silent build:ts
models+=("$(node scripts/synthetic-model.mjs --preset 1b --quant Q4_K_M --vocab ../shared/models/ggml-vocab-phi-3.gguf | tail -1)")
node bench/gpu-check.mjs reference "/tmp/gpu-check-cpu-$stamp.json" "${models[@]}"

# 2. The CUDA build for this architecture only, tools included (llama-bench and llama-server built the same way).
time TEA_BACKEND=cuda TEA_CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=$cap" node scripts/build-native.mjs --tools
node -e "const i = require('./dist/cjs/index.js').nativeInfo(); console.error('gpu-check: devices', i.devices.join('; '))"

# 3. Fully offloaded: texts, speed, serving.
mkdir -p bench/results
node bench/gpu-check.mjs check "/tmp/gpu-check-cpu-$stamp.json" "bench/results/gpu-$stamp.md" "${models[@]}"
