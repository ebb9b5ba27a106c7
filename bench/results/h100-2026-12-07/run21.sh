#!/usr/bin/env bash
# Call 21 (eighth session of the day; prepared in the seventh). N = main 85403ee, X = N + the prefill
# attention's exponentials as ex2.approx.ftz (exp2_ftz: no subnormal range handling around each
# MUFU.EX2), Y = X + decode attention's too (exp2_ftz.patch; d529895..38022eb on main), all in
# carry/bd31.tar.xz. Y's op, model and LeanK GPU tests, BM_PrefillAttention and
# BM_DecodeAttention* of N / X / Y, TTFT at 8K of N / X alternating, N / Y decode at 1K and 8K
# alternating, then ncu's stall reasons for X's prefill attention (KVLAB_CALL_SECONDS=200).
set -uo pipefail
c=carry/bd31
res=/tmp/resd31; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-200} source scripts/gpu_env.sh $c/Y $res
nvidia-smi -L
run_gtest ops_Y 40 $c/Y/tests/test_cuda_ops
run_gtest model_Y 40 $c/Y/tests/test_cuda_model
run_gtest leank_Y 30 $c/Y/tests/test_cuda_leank
pack_results $res
((status == 0)) || exit 1
for build in N X Y; do
  elapsed "BM attention, $build"
  timeout $(step_limit 20) $c/$build/bin/bench_cuda_ops \
    --benchmark_filter='BM_PrefillAttention/|BM_DecodeAttentionStep' >$res/bm_$build.log 2>&1 || echo "exit $?"
  grep -E '^BM_' $res/bm_$build.log | cut -c1-120
done
pack_results $res
bench() {  # TAG BUILD CONTEXTS DECODE_TOKENS
  elapsed "$1"
  timeout $(step_limit 30) $c/$2/bin/kvlab-bench --shape llama-3.1-8b --contexts $3 --decode-tokens $4 \
    --json $res/$1.json >$res/$1.log 2>&1 || echo "exit $?"
  grep -E '^\| llama' $res/$1.log | cut -c1-110
}
for round in 1 2; do
  for build in N X; do bench ttft_$build$round $build 8192 4; done
done
pack_results $res
for round in 1 2; do
  for build in N Y; do bench decode_$build$round $build 1024,8192 128; done
done
pack_results $res
# Where the prefill attention kernel's warps wait (for the next step on it, whatever X gives).
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
elapsed "ncu stall reasons, X's prefill attention"
timeout $(step_limit 60) $ncu --section SchedulerStats --section ComputeWorkloadAnalysis \
  --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' -k regex:prefill_attention \
  --launch-skip 3 --launch-count 1 $c/X/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/1024/7168' \
  >$res/ncu_attention_X.log 2>&1 || echo "exit $?"
grep -E 'stalled|Issue|Eligible|Active Warps|Pipe' $res/ncu_attention_X.log | head -40
pack_results $res
elapsed "done, status $status"
