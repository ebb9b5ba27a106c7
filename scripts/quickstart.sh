#!/usr/bin/env bash
# Installs what kvlab needs, builds it, and runs the main job on the embedded default model:
# kvlab-eval with configs/quickstart.json, writing results/quickstart.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target kvlab-eval kvlab-generate kvlab-inspect kvlab-tokenize kvlab-sweep kvlab-report \
  kvlab-leank kvlab-bench
build/bin/kvlab-eval --config configs/quickstart.json "$@"
