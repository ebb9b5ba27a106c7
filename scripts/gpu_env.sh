# Sourced by the GPU-machine scripts (gpu_check.sh, leank_gpu_check.sh), from the repository root,
# with the build dir as $1 (default build-cuda, made elsewhere and carried along, e.g. by
# scripts/gpu_bundle.sh) and $2 the default log folder when $OUT is unset: where the tests find
# their inputs and binaries, the shared libraries the build machine had and this one may not,
# compute-sanitizer, and helpers for a call's steps.
build=${1:-build-cuda}
# A build inside a bundle of variants packed as carry/NAME.tar.xz (carry/NAME/VARIANT) unpacks
# on first use, every variant at once.
bundle=$(dirname "$build")
[[ -d $build || ! -f $bundle.tar.xz ]] || tar -xJf "$bundle.tar.xz" -C "$(dirname "$bundle")"
out=${OUT:-$2}
mkdir -p "$out"
export KVLAB_SOURCE_DIR=$PWD KVLAB_BIN_DIR=$PWD/$build/bin KVLAB_TOKENIZER_DIR=$PWD/third_party/tokenizers
[[ -d $build/carried-lib ]] && export LD_LIBRARY_PATH=$PWD/$build/carried-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
status=0

# A folder of results (JSON, many logs) into one archive $OUT/NAME.tar.gz (or beside it without
# $OUT), small enough to come back; rerun after each step, so a call cut short keeps what it had.
pack_results() {
  tar -C "$(dirname "$1")" -czf "${OUT:-$(dirname "$1")}/$(basename "$1").tar.gz" "$(basename "$1")"
}

# A device call is killed at its limit, taking the logs of its last step with it: each step's
# timeout is capped so that the whole ends within KVLAB_CALL_SECONDS (default 540) of here.
call_start=$(date +%s)
step_limit() {  # seconds: at most $1, and none past the call's end
  local left=$((${KVLAB_CALL_SECONDS:-540} - ($(date +%s) - call_start)))
  ((left < 1)) && left=1
  echo $((left < $1 ? left : $1))
}
elapsed() { echo "[$(($(date +%s) - call_start)) s] $*"; }
# A gtest binary under a limit into $out/LOG.log: prints its exit and summary lines, and sets
# status=1 unless it passed.   run_gtest LOG LIMIT BINARY [arguments...]
run_gtest() {
  local log=$1 limit=$2
  shift 2
  echo "== $log"
  timeout "$(step_limit "$limit")" "$@" >"$out/$log.log" 2>&1
  echo "exit $?"
  local summary='^\[  (FAILED|SKIPPED|PASSED) |^\| |Failure|error:|Expected|Which is|: max|same slots'
  grep -E "$summary|keeps the same|checkable|^cuda|exception|LeanK" "$out/$log.log" | head -60
  grep -q '^\[  PASSED  \]' "$out/$log.log" && ! grep -q '^\[  FAILED  \]' "$out/$log.log" || status=1
}

# compute-sanitizer's TOOL (memcheck, racecheck) over a gtest binary under a limit into
# $out/LOG.log: prints its exit and the lines that tell, and sets status=1 unless it found
# nothing and the tests passed.   run_sanitizer TOOL LOG LIMIT BINARY [arguments...]
run_sanitizer() {
  local tool=$1 log=$2 limit=$3
  shift 3
  echo "== compute-sanitizer $tool: $log"
  local leaks=()
  [[ $tool == memcheck ]] && leaks=(--leak-check no)
  timeout "$(step_limit "$limit")" "$sanitizer" --tool "$tool" "${leaks[@]}" --print-limit 20 --error-exitcode 1 \
    "$@" >"$out/$log.log" 2>&1
  local rc=$?
  echo "exit $rc"
  local tells='ERROR SUMMARY|RACECHECK SUMMARY|Invalid|out of bounds|hazard|^\[  (FAILED|PASSED) '
  grep -E "$tells" "$out/$log.log" | head -20
  ((rc == 0)) || status=1
}

# kvlab-bench of a named shape under a limit into DIR/LOG.json and .log (a folder pack_results
# sends back as one file): prints its table rows.
#   run_bench DIR LOG LIMIT BINARY SHAPE CONTEXTS DECODE_TOKENS [more kvlab-bench flags...]
run_bench() {
  local dir=$1 log=$2 limit=$3
  elapsed "$log"
  timeout "$(step_limit "$limit")" "$4" --shape "$5" --contexts "$6" --decode-tokens "$7" "${@:8}" --json "$dir/$log.json" \
    >"$dir/$log.log" 2>&1 || echo "exit $?"
  grep -E '^\| (llama|qwen)' "$dir/$log.log" | cut -c1-150
}
