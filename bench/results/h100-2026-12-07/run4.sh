#!/usr/bin/env bash
# Call 4 (2026-12-07): I = main 64ff6c7 + decode attention's merge folded into the last block
# of each KV head (no merge launch); J = I + splits of at least two 64-key tiles. GPU tests on
# I and J, then scripts/bench_ab.sh (alternating runs, medians' ratio) of F (= main,
# carry/bd18/F) against each that passed, at 1K and 8K; I's remaining GPU tests and memcheck
# over its attention tests.
set -uo pipefail
c=carry/bd19
[[ -d carry/bd18/F ]] || tar -xJf carry/bd18.tar.xz -C carry
res=/tmp/resd19; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-420} source scripts/gpu_env.sh $c/I $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd19.tar.gz resd19; }
nvidia-smi -L
declare -A failed
run_gtest attn_I 40 $c/I/tests/test_cuda_ops --gtest_filter='*Attention*'; failed[I]=$status
status=0; run_gtest attn_J 40 $c/J/tests/test_cuda_ops --gtest_filter='*Attention*'; failed[J]=$status
status=0; run_gtest leank_I 40 $c/I/tests/test_cuda_leank; failed[I]=$((failed[I] | status))
status=0; run_gtest leank_J 40 $c/J/tests/test_cuda_leank; failed[J]=$((failed[J] | status))
pack
for v in I J; do
  ((failed[$v] == 0)) || continue
  elapsed "decode: F against $v"
  OUT=$res/ab_$v KVLAB_AB_ROUNDS=3 timeout $(step_limit 120) bash scripts/bench_ab.sh carry/bd18/F $c/$v \
    --shape llama-3.1-8b --contexts 1024,8192 --decode-tokens 64 --warmup-tokens 8 | tee $res/ab_$v.md
  pack
done
status=0
run_gtest test_cuda_ops 60 $c/I/tests/test_cuda_ops
run_gtest test_cuda_model 60 $c/I/tests/test_cuda_model
run_gtest test_cuda_cache_ops 40 $c/I/tests/test_cuda_cache_ops
pack
timeout $(step_limit 40) $sanitizer --tool memcheck --error-exitcode 1 $c/I/tests/test_cuda_ops \
  --gtest_filter='*Attention*' > $res/memcheck_I.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' $res/memcheck_I.log | head -5
pack
elapsed done
