#!/usr/bin/env bash
# A short run of every fuzz target in fuzz/ (scripts/test.sh calls it last), so CI fuzzes a
# little on every run. Builds the targets with clang in build-fuzz/ (or in KVLAB_FUZZ_BUILD, a
# build configured with -DKVLAB_FUZZ=ON, as scripts/test.sh's sanitizer build is), then runs
# each for KVLAB_FUZZ_SECONDS seconds (default 20) from its seed corpus and saved regressions. A
# finding fails the script and leaves its reproducer in <build>/findings/<target>/: copy it to
# fuzz/regressions/<target>/ once fixed, so tests/test_fuzz_regressions.cpp replays it.
# Skips, with a message, when clang or its libFuzzer runtime is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${KVLAB_FUZZ_SECONDS:-20}
jobs=${KVLAB_FUZZ_BUILD_JOBS:-$(nproc)}

if ! command -v clang++ >/dev/null; then
  echo "fuzz_smoke: skipped: clang++ is not installed"
  exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>/dev/null; then
  echo "fuzz_smoke: skipped: clang's libFuzzer runtime is missing (Debian: apt-get install libclang-rt-dev)"
  exit 0
fi

build=${KVLAB_FUZZ_BUILD:-build-fuzz}
if [[ -z ${KVLAB_FUZZ_BUILD:-} ]]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" \
        -DKVLAB_FUZZ=ON -DKVLAB_CUDA=OFF -DKVLAB_TESTS=OFF -DKVLAB_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j "$jobs" --target fuzz_all

failed=()
for bin in "$build"/fuzz/fuzz_*; do
  target=$(basename "$bin")
  target=${target#fuzz_}
  if [[ $target == tokenizer_encode && ! -f third_party/tokenizers/llama3_1/tokenizer.json ]]; then
    echo "fuzz_smoke: $target: skipped: no tokenizers (run scripts/fetch_tokenizers.sh)"
    continue
  fi
  work=$build/corpus/$target        # what the run adds; the committed seeds stay as they are
  findings=$build/findings/$target
  log=$build/findings/$target.log
  mkdir -p "$work" "$findings"
  # The saved reproducers run once each, as they are (some are far longer than fuzzing inputs),
  # then the target is fuzzed from its seeds and what earlier runs here added.
  regressions=()
  [[ -d fuzz/regressions/$target ]] && mapfile -t regressions < <(find "fuzz/regressions/$target" -type f)
  if ((${#regressions[@]})) && ! "$bin" -rss_limit_mb=4096 "${regressions[@]}" >"$log" 2>&1; then
    echo "fuzz_smoke: $target: a saved reproducer fails again (log $log):"
    grep -A 30 -m 1 -E 'ERROR|kvlab fuzz finding|runtime error|deadly signal' "$log" | head -40 || tail -40 "$log"
    failed+=("$target")
    continue
  fi
  seeds=()
  [[ -d fuzz/corpus/$target ]] && seeds+=("fuzz/corpus/$target")
  if "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
       -artifact_prefix="$findings/" "$work" "${seeds[@]}" >>"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz_smoke: $target: $runs executions in ${seconds}s, no findings"
  else
    echo "fuzz_smoke: $target: FINDING (reproducer in $findings/, log $log):"
    grep -A 30 -m 1 -E 'ERROR|kvlab fuzz finding|runtime error|deadly signal' "$log" | head -40 || tail -40 "$log"
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz_smoke: findings in: ${failed[*]}"
  exit 1
fi
