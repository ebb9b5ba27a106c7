#!/usr/bin/env bash
# kvlab (main 913db76), llama.cpp and HF on one H100 in one lease, for the side-by-side table with
# main's kernels (the last one, ../h100-2026-12-07-peers/, ran 8218736). Three calls in a row on
# the same machine, as scripts/peers_gpu.sh asks, with carry ["carry"] holding bd39.tar.xz
# (scripts/gpu_bundle.sh build /tmp/bd39/M, `tar -cf - bd39 | xz -9`) and peers/ (see
# peers_gpu.sh):
#   bash bench/results/h100-2026-12-08-peers/run.sh build    # while llama.cpp compiles (nothing
#       timed): transformers' golden of tiny-random-qwen3-yarn (make_goldens.py --yarn, into
#       $OUT to commit), the GPU tests whole (with that golden), and racecheck of the score and
#       attention kernels (the last racecheck, call 7 of ../h100-2026-12-07/, predates 87a2ac3,
#       d529895 and c09bec5)
#   bash bench/results/h100-2026-12-08-peers/run.sh measure  # peers_gpu.sh measure, kvlab-bench on
#       the Qwen2.5-7B shape, then the 8K prompt at chunks 1,024 and 4,096, alternating, five
#       prompts each (--prompt-reps: the first after idle, the others back to back)
#   bash bench/results/h100-2026-12-08-peers/run.sh hf       # the HF peer and the table
set -uo pipefail
phase=$1
b=carry/bd39/M
KVLAB_CALL_SECONDS=540 source scripts/gpu_env.sh $b /tmp/kvlab_peers  # unpacks bd39; $out, helpers
case $phase in
  build)
    bash scripts/peers_gpu.sh build $b carry/peers > $out/peers_build.log 2>&1 &
    builder=$!
    python3 scripts/make_goldens.py --yarn --models datasets/models --out tests/golden > $out/yarn_golden.log 2>&1
    echo "yarn golden exit $?"; tail -2 $out/yarn_golden.log
    cp tests/golden/qwen3-yarn.safetensors tests/golden/models.json $out/
    run_gtest test_cuda_ops 120 $b/tests/test_cuda_ops
    run_gtest test_cuda_model 120 $b/tests/test_cuda_model
    run_gtest test_cuda_cache_ops 60 $b/tests/test_cuda_cache_ops
    run_gtest test_cuda_leank 90 $b/tests/test_cuda_leank
    run_sanitizer racecheck racecheck_scores 80 $b/tests/test_cuda_cache_ops --gtest_filter='CudaScores.*'
    run_sanitizer racecheck racecheck_attention 200 $b/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
    elapsed "tests done (status $status), waiting for llama.cpp's build"
    wait $builder
    tail -4 $out/peers_build.log
    ;;
  measure)
    bash scripts/peers_gpu.sh measure $b carry/peers
    timeout $(step_limit 150) $b/bin/kvlab-bench --shape qwen2.5-7b --contexts 1024,8192,32768,131072 \
      --decode-tokens 64 --json $out/kvlab_qwen2.5-7b.json > $out/kvlab_qwen2.5-7b.log 2>&1
    echo "qwen2.5-7b exit $?"; grep '^|' $out/kvlab_qwen2.5-7b.log
    for round in 1 2; do
      for chunk in 1024 4096; do
        run_bench $out ttft8k_chunk${chunk}_r$round 60 $b/bin/kvlab-bench llama-3.1-8b 8192 4 --chunk $chunk \
          --prompt-reps 5
        python3 -c "import json,sys; print(sys.argv[1], [round(t, 4) for t in json.load(open(sys.argv[1]))['rows'][0]['ttft_all_s']])" \
          $out/ttft8k_chunk${chunk}_r$round.json
      done
    done
    ;;
  hf)
    bash scripts/peers_gpu.sh hf $b carry/peers
    ;;
esac
elapsed done
