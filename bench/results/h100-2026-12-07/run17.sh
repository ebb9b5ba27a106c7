#!/usr/bin/env bash
# Call 17 (the day's seventh session). M = main's kernels (1506ffd), G = lt_gemm.patch (prefill's
# products through cuBLASLt, each shape's algorithm chosen once by timing cuBLASLt's candidates),
# R = G + rope_kv_append taking four pairs a thread (cae47e8 on main), all in carry/bd28.tar.xz
# (scripts/gpu_bundle.sh of each build). R's GPU tests (G's when R fails), TTFT at 8K and 32K of
# each twice, BM_PrefillMatmul / BM_PrefillMlp of M and G, then R's kvlab-bench at 1K-128K.
set -uo pipefail
c=carry/bd28
res=/tmp/resd28; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-430} source scripts/gpu_env.sh $c/R $res
nvidia-smi -L
run_gtest ops_R 60 $c/R/tests/test_cuda_ops
run_gtest model_R 60 $c/R/tests/test_cuda_model
run_gtest cache_R 40 $c/R/tests/test_cuda_cache_ops
if ((status != 0)); then
  status=0
  run_gtest ops_G 60 $c/G/tests/test_cuda_ops
  run_gtest model_G 60 $c/G/tests/test_cuda_model
fi
pack_results $res
ttft_round() {
  for build in M G R; do
    elapsed "TTFT round $1, $build"
    timeout $(step_limit 40) $c/$build/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 4 \
      --warmup-tokens 1 --json $res/$build$1.json >$res/$build$1.log 2>&1 || echo "exit $?"
    grep -E '^\| llama' $res/$build$1.log | cut -c1-100
  done
  pack_results $res
}
ttft_round 1
for build in M G; do
  elapsed "BM_Prefill, $build"
  timeout $(step_limit 40) $c/$build/bin/bench_cuda_ops --benchmark_filter='BM_PrefillMatmul|BM_PrefillMlp' \
    >$res/bm_$build.log 2>&1 || echo "exit $?"
  grep -E '^BM_Prefill' $res/bm_$build.log | cut -c1-100
done
pack_results $res
ttft_round 2
elapsed "R at 1K-128K"
timeout $(step_limit 100) $c/R/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192,32768,131072 \
  --decode-tokens 64 --json $res/R_all.json > $res/R_all.log 2>&1 || echo "exit $?"
grep '^|' $res/R_all.log | cut -c1-150
pack_results $res
elapsed "done, status $status"
