#!/usr/bin/env bash
# Call 4 (2026-12-07): I = main 64ff6c7 + decode attention's merge folded into the last block
# of each KV head (no merge launch); J = I + splits of at least two 64-key tiles. GPU tests on
# I and J, then decode rounds of F (= main, carry/bd18/F), I and J in rotating order at 1K and
# 8K; I's remaining GPU tests and memcheck over its attention tests.
set -uo pipefail
c=carry/bd19
[[ -d carry/bd18/F ]] || tar -xJf carry/bd18.tar.xz -C carry
res=/tmp/resd19; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-520} source scripts/gpu_env.sh $c/I $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd19.tar.gz resd19; }
nvidia-smi -L
bench() {  # bundle name contexts tokens
  timeout $(step_limit 60) $1/bin/kvlab-bench --shape llama-3.1-8b --contexts $3 --decode-tokens $4 \
    --warmup-tokens 8 --json $res/$2.json --markdown $res/$2.md > $res/$2.log 2>&1
  echo "$2 exit $? $(grep '^| l' $res/$2.md | cut -d'|' -f4,7,11 | tr '\n' ' ')"
}
run_gtest attn_I 40 $c/I/tests/test_cuda_ops --gtest_filter='*Attention*'; ok_I=$status
status=0; run_gtest attn_J 40 $c/J/tests/test_cuda_ops --gtest_filter='*Attention*'; ok_J=$status
status=0; run_gtest leank_I 40 $c/I/tests/test_cuda_leank; ok_I=$((ok_I | status))
status=0; run_gtest leank_J 40 $c/J/tests/test_cuda_leank; ok_J=$((ok_J | status))
pack
V="F"; ((ok_I == 0)) && V="$V I"; ((ok_J == 0)) && V="$V J"
elapsed "decode rounds over: $V"
for r in 1 2 3; do
  case $r in 1) order="$V";; 2) order=$(echo $V | tr ' ' '\n' | tac | tr '\n' ' ');; 3) order="${V#F } F";; esac
  for v in $order; do
    d=$c/$v; [[ $v == F ]] && d=carry/bd18/F
    bench $d ${v}_r$r 1024,8192 64
  done
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
