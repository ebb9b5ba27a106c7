#!/usr/bin/env bash
# One call: decode attention pulling o's weight into L2 (AttentionArgs::prefetch). The build's GPU
# tests that run it (the attention tests name o as the next weight; the model and LeanK tests go
# through the Transformer, which does), then kvlab-bench with the prefetch off
# (KVLAB_L2_PREFETCH_KV_MB=0) and at every length (=1000000) in turns: 1K, 8K and 32K twice each
# way, 128K once. carry ["carry"] with pf.tar.xz (scripts/gpu_bundle.sh, `tar -cf - cuda | xz -9`).
set -uo pipefail
b=build-pf/cuda
[[ -x $b/bin/kvlab-bench ]] || { mkdir -p build-pf && tar -xJf carry/pf.tar.xz -C build-pf; }
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-330} source scripts/gpu_env.sh $b /tmp/kvlab_pf
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run_gtest attention 60 $b/tests/test_cuda_ops --gtest_filter='*Attention*'
run_gtest test_cuda_model 60 $b/tests/test_cuda_model
run_gtest test_cuda_leank 60 $b/tests/test_cuda_leank
bench() {  # bench NAME LIMIT_MB CONTEXTS
  KVLAB_L2_PREFETCH_KV_MB=$2 timeout $(step_limit 90) $b/bin/kvlab-bench --shape llama-3.1-8b --contexts $3 \
    --decode-tokens 64 --json $out/$1.json > $out/$1.log 2>&1
  echo "$1 exit $?"; grep '^| llama' $out/$1.log | cut -d'|' -f4,6,7,11,16
}
for r in 1 2; do
  elapsed "round $r"
  bench off$r 0 1024,8192,32768
  bench on$r 1000000 1024,8192,32768
done
bench off128k 0 131072
bench on128k 1000000 131072
elapsed done
