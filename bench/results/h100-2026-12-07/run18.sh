#!/usr/bin/env bash
# Call 18 (the day's seventh session). P = main + rope_vec.patch (rope_kv_append four pairs a
# thread), A = P + prefill attention's softmax of tile t + 1 under tile t's P V (FA3's
# intra-warpgroup pipelining, attn_overlap.patch), B = A + the two consumer warpgroups taking
# turns at the tensor cores (FA3's ping-pong, attn_pingpong.patch); all in carry/bd29.tar.xz.
# A's and B's GPU op and model tests, racecheck and memcheck of B's prefill attention tests,
# BM_PrefillAttention of each, TTFT at 8K and 32K twice, B at chunk 2,048, then A's and B's
# kvlab-bench at 1K-128K.
set -uo pipefail
c=carry/bd29
res=/tmp/resd29; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-500} source scripts/gpu_env.sh $c/B $res
nvidia-smi -L
for build in A B; do
  run_gtest ops_$build 60 $c/$build/tests/test_cuda_ops
  run_gtest model_$build 60 $c/$build/tests/test_cuda_model
done
run_sanitizer racecheck racecheck_B 60 $c/B/tests/test_cuda_ops --gtest_filter='CudaAttention.Prefill*'
run_sanitizer memcheck memcheck_B 60 $c/B/tests/test_cuda_ops --gtest_filter='CudaAttention.Prefill*'
pack_results $res
for build in P A B; do
  elapsed "BM_PrefillAttention, $build"
  timeout $(step_limit 30) $c/$build/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention' \
    >$res/bm_$build.log 2>&1 || echo "exit $?"
  grep -E '^BM_Prefill' $res/bm_$build.log | cut -c1-120
done
pack_results $res
ttft() {  # TAG BUILD [kvlab-bench options]
  local tag=$1 build=$2
  shift 2
  elapsed "TTFT $tag"
  timeout $(step_limit 40) $c/$build/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 4 \
    --warmup-tokens 1 "$@" --json $res/$tag.json >$res/$tag.log 2>&1 || echo "exit $?"
  grep -E '^\| llama' $res/$tag.log | cut -c1-100
}
for round in 1 2; do
  for build in P A B; do ttft $build$round $build; done
  pack_results $res
done
ttft B_chunk2048 B --chunk 2048
for build in A B; do
  elapsed "$build at 1K-128K"
  timeout $(step_limit 100) $c/$build/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192,32768,131072 \
    --decode-tokens 64 --json $res/${build}_all.json > $res/${build}_all.log 2>&1 || echo "exit $?"
  grep '^|' $res/${build}_all.log | cut -c1-150
  pack_results $res
done
elapsed "done, status $status"
