#!/usr/bin/env bash
# Call 6 (prepared in the day's third session, run in the fourth): compute-sanitizer memcheck over every GPU
# test binary of main fa1e6ff (carry/bd20.tar.xz's F), whole, for the issue's "memcheck clean on
# the test suite" (the calls so far ran it over parts: the attention, cache-op, LeanK and matmul
# tests and the graph replay), then racecheck over the kernels that share memory between threads
# (the score kernels, decode and prefill attention). Under memcheck the kernels run 10-100x
# slower, so each binary gets its own limit, test_cuda_model the longest.
set -uo pipefail
c=carry/bd20
[[ -d $c/F ]] || tar -xJf carry/bd20.tar.xz -C carry
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-560} source scripts/gpu_env.sh $c/F /tmp/memcheck_all
nvidia-smi -L
run_sanitizer memcheck memcheck_ops 120 $c/F/tests/test_cuda_ops
run_sanitizer memcheck memcheck_cache_ops 60 $c/F/tests/test_cuda_cache_ops
run_sanitizer memcheck memcheck_leank 90 $c/F/tests/test_cuda_leank
run_sanitizer memcheck memcheck_model 200 $c/F/tests/test_cuda_model
run_sanitizer racecheck racecheck_scores 30 $c/F/tests/test_cuda_cache_ops --gtest_filter='CudaScores.*'
run_sanitizer racecheck racecheck_attention 40 $c/F/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
elapsed "done, status $status"
