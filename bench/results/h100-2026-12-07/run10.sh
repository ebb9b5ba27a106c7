#!/usr/bin/env bash
# Call 10 (day's fourth session): K = main 4821ad9 (d27bcc8 + a decode attention block whose
# q/k/v GEMV folds the append loads its tiles of settled keys before waiting for the GEMV; built
# from the working tree before that commit) against P = main d27bcc8 (carry/bd21's kvlab-bench,
# probe switch unset). K's attention, model and LeanK tests, memcheck over its attention tests,
# then scripts/bench_ab.sh P against K at 1K, 8K and 32K, three alternating rounds.
set -uo pipefail
for b in bd21 bd22; do [[ -d carry/$b ]] || tar -xJf carry/$b.tar.xz -C carry; done
res=/tmp/resd22; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-480} source scripts/gpu_env.sh carry/bd22/K $res
pack() { tar -C /tmp -czf $OUT/resd22.tar.gz resd22; }
nvidia-smi -L
run_gtest attn_K 40 carry/bd22/K/tests/test_cuda_ops --gtest_filter='*Attention*'
run_gtest model_K 60 carry/bd22/K/tests/test_cuda_model
run_gtest leank_K 40 carry/bd22/K/tests/test_cuda_leank
pack
if ((status == 0)); then
  elapsed "decode: P against K"
  OUT=$res/ab_K KVLAB_AB_ROUNDS=3 timeout $(step_limit 240) bash scripts/bench_ab.sh carry/bd21/P carry/bd22/K \
    --shape llama-3.1-8b --contexts 1024,8192,32768 --decode-tokens 64 --warmup-tokens 8 | tee $res/ab_K.md
  pack
fi
run_sanitizer memcheck memcheck_K 60 carry/bd22/K/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
pack
elapsed "done, status $status"
