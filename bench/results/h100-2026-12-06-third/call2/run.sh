#!/usr/bin/env bash
# Call 2 (2026-12-06, third session): cand = the wgmma prefill attention alone (the mma.sync
# kernel and the L2 prefetch removed): every GPU test, the prefill kernel's benchmark, a full
# bench row at 1K / 8K / 32K, memcheck over the prefill tests.
set -uo pipefail
c=carry/bd12
res=/tmp/resd12; mkdir -p $res
source scripts/gpu_env.sh $c/cand $res
pack() { tar -C /tmp -czf $OUT/resd12.tar.gz resd12; }
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem --format=csv,noheader
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( 380 - ($(date +%s) - t0) )); echo $(( l < $1 ? (l > 1 ? l : 1) : $1 )); }
gt() {  # log test [args]
  local log=$1; shift
  timeout $(cap 120) "$@" > $res/$log.log 2>&1; echo "$log exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|SKIPPED|Expected|Which is|actual' $res/$log.log | head -12
}
for t in test_cuda_ops test_cuda_model test_cuda_cache_ops test_cuda_leank; do gt $t $c/cand/tests/$t; done
pack
el bench-ops
timeout $(cap 40) $c/cand/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
  --benchmark_out=$res/bm_prefill.json > $res/bm_prefill.log 2>&1
echo "bench exit $?"; grep -E '^BM_' $res/bm_prefill.log | awk '{print $1, $2, $NF}'
pack
el bench
timeout $(cap 70) $c/cand/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192,32768 --decode-tokens 64 \
  --warmup-tokens 8 --json $res/bench.json --markdown $res/bench.md > $res/bench.log 2>&1
echo "bench exit $?"; cat $res/bench.md
pack
el memcheck
timeout $(cap 100) $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/cand/tests/test_cuda_ops \
  --gtest_filter='CudaAttention.Prefill' > $res/memcheck_prefill.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_prefill.log
pack
el done
