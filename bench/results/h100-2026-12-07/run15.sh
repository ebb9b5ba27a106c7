#!/usr/bin/env bash
# Call 15 (the day's sixth session; call 13 as prepared, first run): W = branch wip/wgmma-gemm
# 41e0c3d (kernels/gemm.cu: prefill's products on wgmma + TMA with SwiGLU in the epilogue, behind
# KVLAB_CUDA_GEMM=wgmma; on top of the MLP's bf16 scratch) in carry/bd26.tar.xz. W's matmul,
# MLP, attention-input and model tests on the wgmma path, memcheck over its MLP test, then
# BM_PrefillMatmul / BM_PrefillMlp with cuBLAS (unset) and wgmma, and kvlab-bench TTFT where the
# tests passed.
set -uo pipefail
c=carry/bd26
res=/tmp/resd26; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-560} source scripts/gpu_env.sh $c/W $res
nvidia-smi -L
export KVLAB_CUDA_GEMM=wgmma
run_gtest ops_wgmma 60 $c/W/tests/test_cuda_ops \
  --gtest_filter='CudaOps.Matmul*:CudaOps.Mlp:CudaAttention.AttentionInput*'
run_gtest model_wgmma 90 $c/W/tests/test_cuda_model
run_sanitizer memcheck memcheck_wgmma 60 $c/W/tests/test_cuda_ops --gtest_filter='CudaOps.Mlp'
unset KVLAB_CUDA_GEMM
pack_results $res
# The products' speed even when a test failed (whether the kernel can pay at all), then TTFT
# only where every test passed.
rounds=2
((status == 0)) || rounds=1
for ((r = 1; r <= rounds; r++)); do
  for mode in cublas wgmma; do
    elapsed "round $r, $mode"
    [[ $mode == wgmma ]] && export KVLAB_CUDA_GEMM=wgmma
    timeout $(step_limit 60) $c/W/bin/bench_cuda_ops --benchmark_filter='BM_PrefillMatmul|BM_PrefillMlp' \
      >$res/bm_$mode$r.log 2>&1 || echo "exit $?"
    grep -E '^BM_Prefill' $res/bm_$mode$r.log | cut -c1-120
    if ((status == 0)); then
      timeout $(step_limit 60) $c/W/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 \
        --warmup-tokens 2 --json $res/ttft_$mode$r.json >$res/ttft_$mode$r.log 2>&1 || echo "exit $?"
      grep -E '^\| llama' $res/ttft_$mode$r.log | cut -c1-120
    fi
    unset KVLAB_CUDA_GEMM
  done
  pack_results $res
done
elapsed "done, status $status"
