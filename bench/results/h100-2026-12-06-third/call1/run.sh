#!/usr/bin/env bash
# Call 1 (2026-12-06, third session): cand = e276e50 + (a) decode attention prefetching the o
# projection's weight into L2 (KVLAB_L2_PREFETCH_MIB: 0 = off; unset = half of L2) and (b)
# wgmma prefill attention kernels (KVLAB_PREFILL_ATTENTION=wgmma3 (default) / wgmma2 / mma, the
# last the mma.sync kernel as before). GPU tests (every prefill kernel), the prefill kernels'
# benchmark, TTFT, decode A/B, memcheck.
set -uo pipefail
c=carry/bd11
res=/tmp/resd11; mkdir -p $res
source scripts/gpu_env.sh $c/cand $res
pack() { tar -C /tmp -czf $OUT/resd11.tar.gz resd11; }
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem --format=csv,noheader
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( 540 - ($(date +%s) - t0) )); echo $(( l < $1 ? (l > 1 ? l : 1) : $1 )); }
gt() {  # log test [args]
  local log=$1; shift
  timeout $(cap 120) "$@" > $res/$log.log 2>&1; echo "$log exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|SKIPPED|Expected|Which is|actual' $res/$log.log | head -12
}
gt ops_wgmma3 $c/cand/tests/test_cuda_ops
gt test_cuda_model $c/cand/tests/test_cuda_model
KVLAB_PREFILL_ATTENTION=wgmma2 gt ops_wgmma2 $c/cand/tests/test_cuda_ops --gtest_filter='CudaAttention.Prefill*'
pack
ttft() {  # kernel
  KVLAB_PREFILL_ATTENTION=$1 timeout $(cap 50) $c/cand/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 \
    --decode-tokens 8 --warmup-tokens 2 --json $res/ttft_$1.json --markdown $res/ttft_$1.md > $res/ttft_$1.log 2>&1
  echo "ttft $1 exit $? $(grep '^| [lq]' $res/ttft_$1.md | cut -d'|' -f4,6,7 | tr '\n' ' ')"
}
bench() {  # name mib contexts
  if [[ $2 == unset ]]; then unset KVLAB_L2_PREFETCH_MIB; else export KVLAB_L2_PREFETCH_MIB=$2; fi
  timeout $(cap 45) $c/cand/bin/kvlab-bench --shape llama-3.1-8b --contexts $3 --decode-tokens 64 --warmup-tokens 8 \
    --json $res/$1.json --markdown $res/$1.md > $res/$1.log 2>&1
  echo "$1 exit $? $(grep '^| [lq]' $res/$1.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
  unset KVLAB_L2_PREFETCH_MIB
}
el ttft
ttft wgmma3; ttft mma
pack
el decode-ab
for m in 0 unset; do bench p${m}_r1 $m 1024,8192; done
pack
el bench-ops
for k in wgmma3 wgmma2 mma; do
  KVLAB_PREFILL_ATTENTION=$k timeout $(cap 60) $c/cand/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
    --benchmark_out=$res/bm_prefill_$k.json > $res/bm_prefill_$k.log 2>&1
  echo "bench $k exit $?"; grep -E '^BM_' $res/bm_prefill_$k.log | awk '{print $1, $2, $NF}'
done
pack
el more
ttft wgmma2
for m in 32 0 unset; do bench p${m}_r2 $m 1024,8192; done
pack
KVLAB_PREFILL_ATTENTION=mma gt ops_mma $c/cand/tests/test_cuda_ops --gtest_filter='CudaAttention.Prefill*'
for t in test_cuda_cache_ops test_cuda_leank; do gt $t $c/cand/tests/$t; done
pack
el memcheck
timeout $(cap 100) $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/cand/tests/test_cuda_ops \
  --gtest_filter='CudaAttention.Prefill:CudaAttention.AttentionInput*' > $res/memcheck_prefill.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_prefill.log
pack
el done
