#!/usr/bin/env bash
# Call 25 (2026-12-08): compute-sanitizer racecheck over the kernels that share memory between
# threads, on main's kernels (C = c09bec5, built as 458bd7f; carry/bd35.tar.xz): the score
# kernels and every attention test. The last racecheck (call 7) predates the prefill attention's
# bf16 q and output (87a2ac3), its exponentials (d529895) and the bf16 append (c09bec5).
set -uo pipefail
c=carry/bd35
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-300} source scripts/gpu_env.sh $c/C /tmp/resd37
nvidia-smi -L
run_sanitizer racecheck racecheck_scores_C 80 $c/C/tests/test_cuda_cache_ops --gtest_filter='CudaScores.*'
run_sanitizer racecheck racecheck_attention_C 200 $c/C/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
elapsed "done, status $status"
