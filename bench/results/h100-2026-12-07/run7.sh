#!/usr/bin/env bash
# Call 7 (day's fourth session): call 6 again where it fell short. memcheck over test_cuda_ops
# without CudaOps.AllocationFailureIsNoMemory, whose cudaMalloc is meant to fail (call 6's two
# "errors" were that API error, reported by compute-sanitizer, no memory access), then racecheck
# over the score and attention kernels with the time they need (call 6 gave them 30 s and 40 s).
set -uo pipefail
c=carry/bd20
[[ -d $c/F ]] || tar -xJf carry/bd20.tar.xz -C carry
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-570} source scripts/gpu_env.sh $c/F /tmp/memcheck_all
nvidia-smi -L
run_sanitizer memcheck memcheck_ops 90 $c/F/tests/test_cuda_ops --gtest_filter='-CudaOps.AllocationFailureIsNoMemory'
run_sanitizer racecheck racecheck_scores 150 $c/F/tests/test_cuda_cache_ops --gtest_filter='CudaScores.*'
run_sanitizer racecheck racecheck_attention 320 $c/F/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
elapsed "done, status $status"
