#!/usr/bin/env bash
# Call 20 (the day's seventh session): main at 85403ee (carry/bd30.tar.xz, variant N), its
# test_cuda_ops (RopeKvAppend now also at head_dim 36: the one-pair-a-thread path) and
# test_cuda_model, memcheck of RopeKvAppend, then kvlab-bench at 1K-128K on both named shapes.
set -uo pipefail
c=carry/bd30
res=/tmp/resd30; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-200} source scripts/gpu_env.sh $c/N $res
nvidia-smi -L
run_gtest ops_N 60 $c/N/tests/test_cuda_ops
run_gtest model_N 60 $c/N/tests/test_cuda_model
run_sanitizer memcheck memcheck_rope_N 40 $c/N/tests/test_cuda_ops --gtest_filter='CudaAttention.RopeKvAppend'
pack_results $res
for shape in llama-3.1-8b qwen2.5-7b; do
  elapsed "$shape at 1K-128K"
  timeout $(step_limit 60) $c/N/bin/kvlab-bench --shape $shape --contexts 1024,8192,32768,131072 \
    --decode-tokens 64 --json $res/$shape.json > $res/$shape.log 2>&1 || echo "exit $?"
  grep '^|' $res/$shape.log | cut -c1-150
  pack_results $res
done
elapsed "done, status $status"
