#!/usr/bin/env bash
# Runs the CUDA backend's checks on a GPU machine, from the repository root, against a build
# made elsewhere (build-cuda/, carried along): what the machine is, missing shared libraries,
# the op, cache-op and model tests against the CPU oracle, compute-sanitizer memcheck over the
# cache-op and graph tests and racecheck over the shared-memory score kernels, then the op
# benchmarks (speed is measured there, never asserted in tests). Logs go to $OUT (when set).
# Each step has its own time limit, so the whole stays under about 320 s.
#   bash scripts/gpu_check.sh [build dir]
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-build-cuda}" /tmp/gpu_check

echo "== device"
nvidia-smi -L
nvidia-smi --query-gpu=driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv

echo "== shared libraries not found"
for t in "$build"/tests/test_cuda_* "$build"/bin/bench_cuda_ops "$build"/bin/kvlab-bench; do
  [[ -x $t ]] && ldd "$t" | grep 'not found' && status=1
done
echo "(end)"

run_gtest ops 45 "$build"/tests/test_cuda_ops
run_gtest cache_ops 60 "$build"/tests/test_cuda_cache_ops
run_gtest model 120 "$build"/tests/test_cuda_model

run_sanitizer memcheck memcheck_cache_ops 60 "$build"/tests/test_cuda_cache_ops
run_sanitizer memcheck memcheck_model 40 "$build"/tests/test_cuda_model \
  --gtest_filter='CudaModel.GraphReplayIsBitwiseEager'
# The score kernels share memory between threads.
run_sanitizer racecheck racecheck 40 "$build"/tests/test_cuda_cache_ops --gtest_filter='CudaScores.PrefillWindows'

echo "== op benchmarks"
timeout 40 "$build"/bin/bench_cuda_ops --benchmark_min_time=0.05 >"$out/bench_cuda_ops.log" 2>&1
echo "exit $?"
grep -E '^BM_|^[-]+$|^Benchmark' "$out/bench_cuda_ops.log" | cut -c1-150

exit $status
