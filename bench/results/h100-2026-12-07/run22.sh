#!/usr/bin/env bash
# Call 22 (the day's eighth session): N = main d9de22e, B = N + the prefill attention block in bf16
# (Attend's o: rope writes q in bf16, the prefill attention reads it and writes its output in bf16,
# which the o GEMM reads as it is; carry/bd32.tar.xz). B's GPU tests and memcheck of the new
# AttentionBlockPrefill, TTFT 8K of N / B alternating on the Llama-3.1-8B shape, Qwen2.5-7B's 8K
# (biases) N / B, then B at 1K-128K on the Llama-3.1-8B shape (KVLAB_CALL_SECONDS=330).
set -uo pipefail
c=carry/bd32
res=/tmp/resd32; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-330} source scripts/gpu_env.sh $c/B $res
nvidia-smi -L
run_gtest ops_B 60 $c/B/tests/test_cuda_ops
run_gtest model_B 60 $c/B/tests/test_cuda_model
run_gtest leank_B 30 $c/B/tests/test_cuda_leank
run_gtest cache_ops_B 30 $c/B/tests/test_cuda_cache_ops
run_sanitizer memcheck memcheck_block_B 60 $c/B/tests/test_cuda_ops --gtest_filter='CudaAttention.AttentionBlockPrefill'
pack_results $res
((status == 0)) || exit 1
bench() {  # TAG BUILD SHAPE CONTEXTS DECODE_TOKENS
  elapsed "$1"
  timeout $(step_limit 60) $c/$2/bin/kvlab-bench --shape $3 --contexts $4 --decode-tokens $5 \
    --json $res/$1.json >$res/$1.log 2>&1 || echo "exit $?"
  grep -E '^\| (llama|qwen)' $res/$1.log | cut -c1-130
}
for round in 1 2 3; do
  for build in N B; do bench ttft_$build$round $build llama-3.1-8b 8192 4; done
done
pack_results $res
for build in N B; do bench qwen_$build $build qwen2.5-7b 8192 4; done
pack_results $res
bench llama_B B llama-3.1-8b 1024,8192,32768,131072 64
pack_results $res
elapsed "done, status $status"
