#!/usr/bin/env bash
# Call 3 (2026-12-06, third session): cand = 0dc998f + tile t + 1's scores issued while tile t's
# P V runs (one wait takes both); old = 0dc998f. cand's GPU tests (ops, model), the prefill
# kernel's benchmark and TTFT old / cand, memcheck over the prefill tests.
set -uo pipefail
c=carry/bd13
res=/tmp/resd13; mkdir -p $res
source scripts/gpu_env.sh $c/cand $res
pack() { tar -C /tmp -czf $OUT/resd13.tar.gz resd13; }
nvidia-smi -L
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( 170 - ($(date +%s) - t0) )); echo $(( l < $1 ? (l > 1 ? l : 1) : $1 )); }
gt() {  # log test [args]
  local log=$1; shift
  timeout $(cap 100) "$@" > $res/$log.log 2>&1; echo "$log exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|SKIPPED|Expected|Which is|actual' $res/$log.log | head -12
}
gt test_cuda_ops $c/cand/tests/test_cuda_ops --gtest_filter='CudaAttention.*'
gt test_cuda_model $c/cand/tests/test_cuda_model
pack
el bench-ops
for r in 1; do for v in old cand; do
  timeout $(cap 30) $c/$v/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
    --benchmark_out=$res/bm_${v}_r$r.json > $res/bm_${v}_r$r.log 2>&1
  echo "$v r$r exit $? $(grep -E '^BM_' $res/bm_${v}_r$r.log | awk '{printf "%s ", $2}')"
done; done
pack
el ttft
for v in old cand; do
  timeout $(cap 45) $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 4 \
    --warmup-tokens 2 --json $res/ttft_$v.json --markdown $res/ttft_$v.md > $res/ttft_$v.log 2>&1
  echo "ttft $v exit $? $(grep '^| [lq]' $res/ttft_$v.md | cut -d'|' -f4,6,7 | tr '\n' ' ')"
done
pack
el memcheck
timeout $(cap 60) $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/cand/tests/test_cuda_ops \
  --gtest_filter='CudaAttention.Prefill' > $res/memcheck_prefill.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_prefill.log
pack
el done
