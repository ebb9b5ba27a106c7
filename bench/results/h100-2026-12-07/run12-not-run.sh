#!/usr/bin/env bash
# Call 12 (prepared in the day's fifth session, not run): L = branch wip/lpt-prefill 883c2d9 (the
# prefill attention grid as (head, query tile), so every head's heaviest causal tiles go out
# first) against M = main 8e2844e, both in carry/bd23.tar.xz. L's attention and model tests,
# BM_PrefillAttention of M and L alternating twice, then TTFT through scripts/bench_ab.sh.
set -uo pipefail
c=carry/bd23
res=/tmp/resd23l; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-360} source scripts/gpu_env.sh $c/L $res
nvidia-smi -L
run_gtest attn_L 40 $c/L/tests/test_cuda_ops --gtest_filter='*Attention*'
run_gtest model_L 90 $c/L/tests/test_cuda_model
pack_results $res
if ((status == 0)); then
  for r in 1 2; do
    for build in M L; do
      elapsed "BM_PrefillAttention, $build, round $r"
      timeout $(step_limit 40) $c/$build/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention' \
        >$res/bm_$build$r.log 2>&1 || echo "exit $?"
      grep -E '^BM_PrefillAttention' $res/bm_$build$r.log | cut -c1-110
    done
  done
  pack_results $res
  elapsed "TTFT: M against L"
  OUT=$res/ab_L KVLAB_AB_ROUNDS=2 timeout $(step_limit 120) bash scripts/bench_ab.sh $c/M $c/L \
    --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 --warmup-tokens 2 | tee $res/ab_L.md
  pack_results $res
fi
elapsed "done, status $status"
