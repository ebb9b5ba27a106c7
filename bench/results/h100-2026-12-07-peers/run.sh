#!/usr/bin/env bash
# kvlab (main's kernels, 8218736), llama.cpp and HF on one H100 in one lease: three calls in a row
# on the same machine, as scripts/peers_gpu.sh asks, with carry ["carry"] holding cuda.tar.xz
# (scripts/gpu_bundle.sh of the build, `tar -cf - cuda | xz -9`) and peers/ (see peers_gpu.sh):
#   bash bench/results/h100-2026-12-07-peers/run.sh build    # the GPU tests and memcheck while
#                                                            #   llama.cpp compiles (nothing timed)
#   bash bench/results/h100-2026-12-07-peers/run.sh measure  # peers_gpu.sh measure, then
#                                                            #   kvlab-bench on the Qwen2.5-7B shape
#   bash bench/results/h100-2026-12-07-peers/run.sh hf       # the HF peer and the table
set -uo pipefail
phase=$1
b=build-peers/cuda
[[ -x $b/bin/kvlab-bench ]] || { mkdir -p build-peers && tar -xJf carry/cuda.tar.xz -C build-peers; }
KVLAB_CALL_SECONDS=500 source scripts/gpu_env.sh $b /tmp/kvlab_peers  # run_gtest, step_limit, $out
case $phase in
  build)
    bash scripts/peers_gpu.sh build $b carry/peers > $out/peers_build.log 2>&1 &
    builder=$!
    run_gtest test_cuda_ops 120 $b/tests/test_cuda_ops
    run_gtest test_cuda_model 120 $b/tests/test_cuda_model
    run_gtest test_cuda_cache_ops 60 $b/tests/test_cuda_cache_ops
    run_gtest test_cuda_leank 90 $b/tests/test_cuda_leank
    timeout $(step_limit 120) $sanitizer --tool memcheck --error-exitcode 1 $b/tests/test_cuda_ops \
      --gtest_filter='*Attention*' > $out/memcheck.log 2>&1
    echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' $out/memcheck.log | head -3
    elapsed "tests done, waiting for llama.cpp's build"
    wait $builder
    tail -4 $out/peers_build.log
    ;;
  measure)
    bash scripts/peers_gpu.sh measure $b carry/peers
    timeout $(step_limit 150) $b/bin/kvlab-bench --shape qwen2.5-7b --contexts 1024,8192,32768,131072 \
      --decode-tokens 64 --json $out/kvlab_qwen2.5-7b.json > $out/kvlab_qwen2.5-7b.log 2>&1
    echo "qwen2.5-7b exit $?"; grep '^|' $out/kvlab_qwen2.5-7b.log
    ;;
  hf)
    bash scripts/peers_gpu.sh hf $b carry/peers
    ;;
esac
elapsed done
