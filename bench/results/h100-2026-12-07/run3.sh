#!/usr/bin/env bash
# Call 3 (2026-12-07): F = main 02f95a9 (prefill attention, leaner); G = F + lazy rescaling (a
# row's exponent reference moves only once its max passes it by more than 8, log2 domain) and
# one wgmma descriptor a tile advanced by adds (lazy_rescale.patch); H = G + 128-key tiles in
# 3 stages (key_tiles_128.patch). H's tests (G's if H's attention tests fail), the prefill
# benchmark of F, G and H in alternating rounds, TTFT of F against G and H
# (scripts/bench_ab.sh), F's 8K TTFT at prefill chunks of 2,048, 4,096 and 1,024 tokens,
# memcheck last.
set -uo pipefail
c=carry/bd18
res=/tmp/resd18; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-300} source scripts/gpu_env.sh $c/H $res  # step_limit, run_gtest
pack() { tar -C /tmp -czf $OUT/resd18.tar.gz resd18; }
nvidia-smi -L
run_gtest attn_H 40 $c/H/tests/test_cuda_ops --gtest_filter='*Attention*'
if ((status == 0)); then T=H; P="F G H H G F"; else T=G; P="F G G F"; status=0; fi
AB=$(echo G $T | tr " " "\n" | uniq)  # the candidates TTFT compares with F
run_gtest test_cuda_ops 60 $c/$T/tests/test_cuda_ops
elapsed prefill-rounds
i=0
for v in $P; do
  i=$((i + 1))
  timeout $(step_limit 30) $c/$v/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
    --benchmark_out=$res/bm_prefill_${v}_$i.json > $res/bm_prefill_${v}_$i.log 2>&1
  echo "bench $v exit $?: $(grep -E '^BM_' $res/bm_prefill_${v}_$i.log | awk '{printf "%s ", $2}')"
done
pack
run_gtest test_cuda_model 60 $c/$T/tests/test_cuda_model
pack
for v in $AB; do
  elapsed "TTFT: F against $v"
  OUT=$res/ttft_$v timeout $(step_limit 90) bash scripts/bench_ab.sh $c/F $c/$v \
    --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 --warmup-tokens 8 | tee $res/ttft_$v.md
  pack
done
for r in 1 2; do
  for chunk in 2048 4096 1024; do
    o=$res/chunk${chunk}_$r
    timeout $(step_limit 40) $c/F/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 8 \
      --chunk $chunk --warmup-tokens 8 --json $o.json --markdown $o.md > $o.log 2>&1
    echo "F chunk $chunk exit $? $(grep '^| l' $o.md | cut -d'|' -f4,6,16 | tr '\n' ' ')"
  done
done
pack
timeout $(step_limit 60) $sanitizer --tool memcheck --error-exitcode 1 $c/$T/tests/test_cuda_ops \
  --gtest_filter='*Attention*' > $res/memcheck_$T.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' $res/memcheck_$T.log | head -5
pack
elapsed done
