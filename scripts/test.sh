#!/usr/bin/env bash
# Builds kvlab and runs the whole test suite twice: a Release build (CUDA kernels compiled
# for sm_90a when nvcc is present; GPU tests skip without a device) and an ASan+UBSan build
# of the CPU code (clang), whose fuzz targets then run briefly on every parser
# (scripts/fuzz_smoke.sh, KVLAB_FUZZ_SECONDS each, default 10 here). Set KVLAB_SKIP_SANITIZE=1
# to run only the first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

bash scripts/setup.sh
bash scripts/fetch_tokenizers.sh

# Where the time goes, for whoever keeps CI within its budget (the CI summary repeats these).
took() { echo "test.sh: $1 done at ${SECONDS} s"; }

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
took "release build"
ctest --test-dir build --output-on-failure -j "$jobs"
took "release tests"

if [[ ${KVLAB_SKIP_SANITIZE:-0} != 1 ]]; then
  # One clang build serves the sanitizer pass and the fuzz run: everything gets ASan+UBSan, the
  # library also libFuzzer's coverage instrumentation (harmless to the tests). -O1 with line
  # tables, as ASan's docs advise: half the compile time of -O2 -g.
  cmake -S . -B build-asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
        -DKVLAB_SANITIZE=ON -DKVLAB_FUZZ=ON -DKVLAB_CUDA=OFF -DKVLAB_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  took "sanitizer build"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -L cpu
  took "sanitizer tests"
  KVLAB_FUZZ_BUILD=build-asan KVLAB_FUZZ_SECONDS=${KVLAB_FUZZ_SECONDS:-10} bash scripts/fuzz_smoke.sh
  took "fuzz run"
fi
