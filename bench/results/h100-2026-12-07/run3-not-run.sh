#!/usr/bin/env bash
# Call 3 (2026-12-07): F = main 02f95a9 (prefill attention, leaner); G = F + lazy rescaling (a
# row's exponent reference moves only once its max passes it by more than 8, log2 domain) and
# one wgmma descriptor a tile advanced by adds. G's tests, prefill benchmark and TTFT
# against F, memcheck last.
set -uo pipefail
c=carry/bd17
res=/tmp/resd17; mkdir -p $res
KVLAB_CALL_SECONDS=170 source scripts/gpu_env.sh $c/G $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd17.tar.gz resd17; }
nvidia-smi -L
run_gtest attn_G 40 $c/G/tests/test_cuda_ops --gtest_filter='*Attention*'
((status == 0)) || { pack; exit 1; }
run_gtest test_cuda_ops 60 $c/G/tests/test_cuda_ops
elapsed prefill-rounds
i=0
for v in F G G F; do
  i=$((i + 1))
  timeout $(step_limit 30) $c/$v/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
    --benchmark_out=$res/bm_prefill_${v}_$i.json > $res/bm_prefill_${v}_$i.log 2>&1
  echo "bench $v exit $?: $(grep -E '^BM_' $res/bm_prefill_${v}_$i.log | awk '{printf "%s ", $2}')"
done
pack
run_gtest test_cuda_model 60 $c/G/tests/test_cuda_model
pack
for v in G F; do
  timeout $(step_limit 40) $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 \
    --warmup-tokens 8 --json $res/ttft_$v.json --markdown $res/ttft_$v.md > $res/ttft_$v.log 2>&1
  echo "ttft $v exit $? $(grep '^| [lq]' $res/ttft_$v.md | cut -d'|' -f4,6 | tr '\n' ' ')"
done
pack
timeout $(step_limit 60) $sanitizer --tool memcheck --error-exitcode 1 $c/G/tests/test_cuda_ops \
  --gtest_filter='*Attention*' > $res/memcheck_G.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' $res/memcheck_G.log | head -5
pack
elapsed done
