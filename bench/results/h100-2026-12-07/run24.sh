#!/usr/bin/env bash
# Call 24 (tenth session of the day), after call 23 found C's 8K prompt 99% kernel-busy and its
# kernels ~8.5% slower than ncu times them alone, with the SM clock at 1,560-1,590 MHz while the
# prompt runs: why the card slows (nvidia-smi's clock-event reasons and instant power every
# 10 ms), and whether larger prefill chunks (fewer, larger products and attention tiles, less
# energy a prompt) bring C's 8K prompt under 0.20 s; then C at 128K with each chunk for its peak
# memory; then compute-sanitizer memcheck over every GPU test binary of C, whole (the last
# whole-suite run, calls 6-7, predates c09bec5). Bundle: carry/bd35.tar.xz (C = c09bec5's
# kernels, built as 458bd7f).
set -uo pipefail
c=carry/bd35
res=/tmp/resd36; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-540} source scripts/gpu_env.sh $c/C $res
nvidia-smi -L
nvidia-smi -q -d POWER,PERFORMANCE,CLOCK > $res/smi_q.txt 2>&1
grep -iE 'power limit|max clocks|SM  ' $res/smi_q.txt | head -12
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw.instant,clocks_event_reasons.active,temperature.gpu \
  --format=csv,noheader,nounits -lms 10 > $res/clocks.csv 2>&1 &
smi=$!
ttft() {
  elapsed "ttft_chunk$1_$2"
  timeout "$(step_limit 45)" $c/C/bin/kvlab-bench --shape llama-3.1-8b --contexts $3 --decode-tokens 4 --chunk $1 \
    --json $res/ttft_chunk$1_$2.json > $res/ttft_chunk$1_$2.log 2>&1 || echo "exit $?"
  grep -E '^\| llama' $res/ttft_chunk$1_$2.log | cut -c1-150
}
for round in 1 2; do
  for chunk in 1024 2048 4096; do ttft $chunk $round 8192; done
done
kill $smi
head -3 $res/clocks.csv
pack_results $res
for chunk in 1024 2048 4096; do ttft $chunk 128k 131072; done
pack_results $res
# Every GPU test under memcheck; CudaOps.AllocationFailureIsNoMemory left out: its deliberate
# failed cudaMalloc counts as an API error (call 6).
run_sanitizer memcheck memcheck_ops_C 90 $c/C/tests/test_cuda_ops --gtest_filter=-CudaOps.AllocationFailureIsNoMemory
run_sanitizer memcheck memcheck_cache_ops_C 40 $c/C/tests/test_cuda_cache_ops
run_sanitizer memcheck memcheck_leank_C 50 $c/C/tests/test_cuda_leank
run_sanitizer memcheck memcheck_model_C 150 $c/C/tests/test_cuda_model
pack_results $res
elapsed "done, status $status"
