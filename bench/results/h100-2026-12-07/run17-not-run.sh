#!/usr/bin/env bash
# Call 17 (prepared in the day's sixth session, not run: the device would not start and its time
# ran out). G = lt_gemm.patch (branch wip/lt-gemm 4d955ee: prefill's products through cuBLASLt,
# each shape's algorithm chosen once by timing cuBLASLt's candidates) against M = main's kernels
# (d6abd3c), both in carry/bd27.tar.xz (G: gpu_bundle.sh of a build with the patch; M: of main).
# G's GPU tests, then TTFT at 8K and 32K of each, BM_PrefillMatmul / BM_PrefillMlp of each, and a
# second TTFT round.
set -uo pipefail
c=carry/bd27
res=/tmp/resd27; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-270} source scripts/gpu_env.sh $c/G $res
nvidia-smi -L
run_gtest ops_G 60 $c/G/tests/test_cuda_ops
run_gtest model_G 60 $c/G/tests/test_cuda_model
pack_results $res
if ((status == 0)); then
  ttft_round() {
    for build in M G; do
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
fi
elapsed "done, status $status"
