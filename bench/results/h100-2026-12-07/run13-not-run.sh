#!/usr/bin/env bash
# Call 13 (prepared in the day's fifth session, not run): W = branch wip/wgmma-gemm 0a1dd56
# (kernels/gemm.cu: prefill's products on wgmma + TMA with SwiGLU in the epilogue, behind
# KVLAB_CUDA_GEMM=wgmma; on top of wip/mlp-scratch) in carry/bd24.tar.xz. W's matmul, MLP,
# attention-input and model tests on the wgmma path, memcheck over its MLP test, then
# BM_PrefillMatmul / BM_PrefillMlp and kvlab-bench TTFT with cuBLAS (unset) and wgmma, alternating.
set -uo pipefail
c=carry/bd24
res=/tmp/resd24; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-560} source scripts/gpu_env.sh $c/W $res
nvidia-smi -L
export KVLAB_CUDA_GEMM=wgmma
run_gtest ops_wgmma 60 $c/W/tests/test_cuda_ops \
  --gtest_filter='CudaOps.Matmul*:CudaOps.Mlp:CudaAttention.AttentionInput*'
run_gtest model_wgmma 90 $c/W/tests/test_cuda_model
run_sanitizer memcheck memcheck_wgmma 60 $c/W/tests/test_cuda_ops --gtest_filter='CudaOps.Mlp'
unset KVLAB_CUDA_GEMM
pack_results $res
if ((status == 0)); then
  for r in 1 2; do
    for mode in cublas wgmma; do
      elapsed "round $r, $mode"
      [[ $mode == wgmma ]] && export KVLAB_CUDA_GEMM=wgmma
      timeout $(step_limit 60) $c/W/bin/bench_cuda_ops --benchmark_filter='BM_PrefillMatmul|BM_PrefillMlp' \
        >$res/bm_$mode$r.log 2>&1 || echo "exit $?"
      grep -E '^BM_Prefill' $res/bm_$mode$r.log | cut -c1-120
      timeout $(step_limit 60) $c/W/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 \
        --warmup-tokens 2 --json $res/ttft_$mode$r.json >$res/ttft_$mode$r.log 2>&1 || echo "exit $?"
      grep -E '^\| llama' $res/ttft_$mode$r.log | cut -c1-120
      unset KVLAB_CUDA_GEMM
    done
    pack_results $res
  done
fi
elapsed "done, status $status"
