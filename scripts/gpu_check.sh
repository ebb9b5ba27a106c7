#!/usr/bin/env bash
# Runs the CUDA backend's checks on a GPU machine, from the repository root, against a build
# made elsewhere (build-cuda/, carried along): what the machine is, missing shared libraries,
# the op tests against the CPU oracle, compute-sanitizer memcheck over the quick tests and
# racecheck over the attention tests, and the bandwidth table. Logs go to $OUT (when set).
#   bash scripts/gpu_check.sh [build dir]
set -uo pipefail
build=${1:-build-cuda}
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export KVLAB_SOURCE_DIR=$PWD KVLAB_BIN_DIR=$PWD/$build/bin KVLAB_TOKENIZER_DIR=$PWD/third_party/tokenizers
status=0

echo "== device"
nvidia-smi -L
nvidia-smi --query-gpu=driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv

echo "== shared libraries not found"
for t in "$build"/tests/test_cuda_*; do
  [[ -x $t ]] && ldd "$t" | grep 'not found' && status=1
done
echo "(end)"

echo "== op tests"
"$build"/tests/test_cuda_ops 2>&1 | tee "$out/ops.log" |
  grep -E '^\[  (FAILED|SKIPPED|PASSED) |^\| |Failure|error:|Expected|Which is|rel|^cuda' || true
grep -q '^\[  PASSED  \]' "$out/ops.log" && ! grep -q '^\[  FAILED  \]' "$out/ops.log" || status=1

echo "== compute-sanitizer memcheck (quick tests)"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 120 "$sanitizer" --tool memcheck --leak-check no --print-limit 20 \
  "$build"/tests/test_cuda_ops --gtest_filter='-*Long*:*AllocationFailure*' >"$out/memcheck.log" 2>&1
echo "exit $?"
grep -E 'ERROR SUMMARY|Invalid|out of bounds|^\[  (FAILED|PASSED) ' "$out/memcheck.log" | head -30

echo "== compute-sanitizer racecheck (shared-memory kernels: attention)"
timeout 90 "$sanitizer" --tool racecheck --print-limit 20 \
  "$build"/tests/test_cuda_ops --gtest_filter='CudaAttention.Decode:CudaAttention.Prefill' >"$out/racecheck.log" 2>&1
echo "exit $?"
grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|hazard|^\[  (FAILED|PASSED) ' "$out/racecheck.log" | head -20

echo "== bandwidth"
"$build"/tests/test_cuda_bandwidth 2>&1 | tee "$out/bandwidth.log" |
  grep -E '^\||copy|prefill|FAILED|Failure|Expected' || true

exit $status
