#!/usr/bin/env bash
# Call 23 (prepared in the day's eighth session, rebuilt in the ninth, which the device never
# started for). M = main 43907f5, C = M + qkv_bf16.patch (branch wip/qkv-bf16, 458bd7f: the q/k/v
# GEMM writing bf16 when the attention block runs in bf16 without biases; rope + append reads bf16
# q, k and v), and G = main 0cf8865 + each prefill chunk recorded and launched as one CUDA graph when
# KVLAB_PREFILL_GRAPH is set (branch wip/prefill-graph, cf527b0: an experiment on whether the
# time between a prompt's ~2,300 kernels matters), all in carry/bd35.tar.xz (with de7258b's kernel
# tracer and CUPTI). M's op tests (the new head_slots / expect_kv_close helpers), C's op and model
# GPU tests, TTFT 8K of M / C / G alternating on the Llama-3.1-8B shape, C's 8K prompt under the
# in-run kernel tracer (bench/kernel_trace.cpp), G's model tests with graphs, C's LeanK tests and
# memcheck of AttentionBlockPrefill, then C at 1K-128K on the Llama shape and M at 1K-128K on
# Qwen2.5-7B's (biased: C's path is M's there), then ncu's breakdown of C's 8K prompt at boost
# clocks (KVLAB_CALL_SECONDS=540, timeout 590; the order puts what decides first, as device time
# may run short).
set -uo pipefail
c=carry/bd35
res=/tmp/resd35; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-540} source scripts/gpu_env.sh $c/C $res
nvidia-smi -L
run_gtest ops_M 60 $c/M/tests/test_cuda_ops
run_gtest ops_C 60 $c/C/tests/test_cuda_ops
run_gtest model_C 60 $c/C/tests/test_cuda_model
pack_results $res
((status == 0)) || exit 1
# The SM clock and power every 10 ms under the TTFT runs: ncu's kernels alone run at the clock
# an idle card boosts to; a prompt's back-to-back products may run at a power-limited one.
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader,nounits \
  -lms 10 > $res/clocks.csv 2>&1 &
smi=$!
ttft() { run_bench $res ttft_$1$2 30 $c/$1/bin/kvlab-bench llama-3.1-8b 8192 4; }
for round in 1 2; do
  ttft M $round
  ttft C $round
  KVLAB_PREFILL_GRAPH=1 ttft G $round
done
kill $smi
pack_results $res
# Where C's 8K prompt goes in a real run: bench/kernel_trace.cpp records each kernel's span at the
# clocks it ran at, so the breakdown also tells the time between kernels.
elapsed "kernel trace of C's 8K prompt"
CUDA_INJECTION64_PATH=$PWD/$c/C/bin/libkvlab_kernel_trace.so KVLAB_KERNEL_TRACE=$res/trace8k.csv \
  timeout $(step_limit 60) $c/C/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 4 \
  > $res/trace_bench.log 2>&1 || echo "exit $?"
grep -E '^\| llama|kernel_trace' $res/trace_bench.log | cut -c1-150
[[ -f $res/trace8k.csv ]] && python3 scripts/ncu_breakdown.py $res/trace8k.csv --passes 1-8 |
  tee $res/trace_breakdown_8k.txt && gzip -f $res/trace8k.csv
pack_results $res
KVLAB_PREFILL_GRAPH=1 run_gtest model_G 60 $c/G/tests/test_cuda_model
run_gtest leank_C 30 $c/C/tests/test_cuda_leank
run_sanitizer memcheck memcheck_block_C 60 $c/C/tests/test_cuda_ops --gtest_filter='CudaAttention.AttentionBlockPrefill'
pack_results $res
run_bench $res llama_C 60 $c/C/bin/kvlab-bench llama-3.1-8b 1024,8192,32768,131072 64
pack_results $res
run_bench $res qwen_M 60 $c/M/bin/kvlab-bench qwen2.5-7b 1024,8192,32768,131072 64
pack_results $res
# Where C's 8K prompt goes at the clocks it runs at, if time is left: call 16's breakdown ran at
# ncu's default base clocks (products 170 ms), 2026-12-06's with --clock-control none (151 ms).
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
elapsed "ncu over C's 8K prefill, boost clocks"
timeout $(step_limit 150) $ncu --clock-control none --metrics gpu__time_duration.sum --csv \
  --log-file $res/prefill8k.csv $c/C/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 2 \
  --warmup-tokens 1 > $res/ncu_bench.log 2>&1 || echo "exit $?"
[[ -f $res/prefill8k.csv ]] && gzip -f $res/prefill8k.csv &&
  python3 scripts/ncu_breakdown.py $res/prefill8k.csv.gz --passes 1-8 | tee $res/breakdown_8k.txt
pack_results $res
elapsed "done, status $status"
