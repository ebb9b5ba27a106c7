#!/usr/bin/env bash
# LeanK's GPU checks, from the repository root, against a build made elsewhere (as
# scripts/gpu_check.sh): the LeanK tests against the CPU oracle and the decode-attention tests,
# compute-sanitizer memcheck over the LeanK kernels, the decode-attention benchmarks (full K vs
# LeanK at 32K / 128K), and kvlab-bench end to end, full cache vs LeanK 70% on the
# Llama-3.1-8B shape (K and V bytes as the allocator counts them). Logs go to $OUT (when set).
# About 160 s on an H200.
#   bash scripts/leank_gpu_check.sh [build dir]
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-build-cuda}" /tmp/leank_gpu_check

for t in test_cuda_leank test_cuda_ops; do run_gtest $t 90 "$build/tests/$t"; done

# LeanK's demotion and attention kernels.
run_sanitizer memcheck memcheck 90 "$build/tests/test_cuda_leank" \
  --gtest_filter='CudaLeank.EveryKeptCount*:CudaLeank.SeveralQueries*:CudaLeank.HeadsThatKeepNothing*'

echo "== decode attention, full K vs LeanK"
timeout 120 "$build/bin/bench_cuda_ops" --benchmark_filter='DecodeAttention' \
  --benchmark_out="$out/bench_attention.json" --benchmark_out_format=json 2>&1 | grep BM_

echo "== end to end, llama-3.1-8b shape"
for leank in "" "--leank-sparsity 0.7"; do
  tag=${leank:+leank70}
  tag=${tag:-full}
  timeout 200 "$build/bin/kvlab-bench" --shape llama-3.1-8b --contexts 32768,131072 --decode-tokens 128 \
    --warmup-tokens 8 $leank --json "$out/e2e_$tag.json" --markdown "$out/e2e_$tag.md" >"$out/e2e_$tag.log" 2>&1
  echo "exit $?"
  tail -3 "$out/e2e_$tag.log"
done
exit $status
