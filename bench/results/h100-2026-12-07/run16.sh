#!/usr/bin/env bash
# Call 16 (the day's sixth session): main's kernels (d6abd3c, the build in carry/cuda.tar.xz),
# its model GPU tests, kvlab-bench at 1K-128K on the Llama-3.1-8B shape, where an 8K prompt's
# time goes (ncu times every kernel of kvlab-bench's 8K prefill alone, caches flushed, and
# scripts/ncu_breakdown.py sums its eight chunks by kernel kind), then the Qwen2.5-7B shape.
set -uo pipefail
b=build-peers/cuda
[[ -x $b/bin/kvlab-bench ]] || { mkdir -p build-peers && tar -xJf carry/cuda.tar.xz -C build-peers; }
res=/tmp/resncu; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-480} source scripts/gpu_env.sh $b $res
nvidia-smi -L
run_gtest model 90 $b/tests/test_cuda_model
bench_shape() {
  elapsed "$1"
  timeout $(step_limit 100) $b/bin/kvlab-bench --shape $1 --contexts 1024,8192,32768,131072 --decode-tokens 64 \
    --json $res/$1.json > $res/$1.log 2>&1 || echo "exit $?"
  grep '^|' $res/$1.log | cut -c1-150
}
bench_shape llama-3.1-8b
pack_results $res
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
elapsed "ncu over an 8K prefill"
timeout $(step_limit 240) $ncu --metrics gpu__time_duration.sum --csv \
  --log-file $res/prefill8k.csv $b/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 2 \
  --warmup-tokens 1 > $res/bench.log 2>&1
echo "ncu exit $?"; tail -3 $res/bench.log
gzip -f $res/prefill8k.csv
python3 scripts/ncu_breakdown.py $res/prefill8k.csv.gz --passes all > $res/breakdown_all.txt 2>&1
head -c 1500 $res/breakdown_all.txt; echo
python3 scripts/ncu_breakdown.py $res/prefill8k.csv.gz --passes 1-8 | tee $res/breakdown_8k.txt
pack_results $res
bench_shape qwen2.5-7b
pack_results $res
elapsed done
