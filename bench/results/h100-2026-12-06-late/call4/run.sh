#!/usr/bin/env bash
# Call 4 (2026-12-06, late): old = 7e1546c (HEAD: argmax over spans); cand = + rmsnorm held in
# registers (blocks of 256) + prefill attention variants forced by KVLAB_PREFILL_VARIANT (experiment
# build only): 0 = one row tile, 64 keys a tile; 1 = two tiles, 64; 2 = two tiles, 32; 3 = one, 32.
set -uo pipefail
c=carry/bd7
res=/tmp/resd7; mkdir -p $res
source scripts/gpu_env.sh $c/cand $res
pack() { tar -C /tmp -czf $OUT/resd7.tar.gz resd7; }
nvidia-smi -L
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( 230 - ($(date +%s) - t0) )); echo $(( l < $1 ? (l > 1 ? l : 1) : $1 )); }
timeout 100 $c/cand/tests/test_cuda_ops > $res/test_cuda_ops.log 2>&1; echo "test_cuda_ops exit $?"
grep -E '^\[  (FAILED|PASSED) |Failure' $res/test_cuda_ops.log | head -6
for v in 2 3; do
  KVLAB_PREFILL_VARIANT=$v timeout 60 $c/cand/tests/test_cuda_ops --gtest_filter='CudaAttention.Prefill*' > $res/test_v$v.log 2>&1
  echo "variant $v prefill tests exit $?"; grep -E '^\[  (FAILED|PASSED) |Failure' $res/test_v$v.log | head -4
done
timeout 60 $c/cand/tests/test_cuda_model > $res/test_cuda_model.log 2>&1; echo "test_cuda_model exit $?"
grep -E '^\[  (FAILED|PASSED) |Failure' $res/test_cuda_model.log | head -4
pack
el bm-attention
for v in 0 1 2 3; do
  KVLAB_PREFILL_VARIANT=$v timeout $(cap 40) $c/cand/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' > $res/bm_att_v$v.log 2>&1
  echo "v$v: $(grep -E '^BM_' $res/bm_att_v$v.log | awk '{printf "%s %s | ", $1, $2}' | sed 's#BM_PrefillAttention/##g; s#/iterations:25/manual_time##g')"
done
pack
el bm-norm
for v in old cand; do
  timeout $(cap 40) $c/$v/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttentionInput|BM_PrefillMlp' > $res/bm_norm_$v.log 2>&1
  echo "$v: $(grep -E '^BM_' $res/bm_norm_$v.log | awk '{printf "%s %s | ", $1, $2}' | sed 's#/iterations:25/manual_time##g')"
done
pack
el ttft
b() {  # name, build, variant
  KVLAB_PREFILL_VARIANT=$3 timeout $(cap 45) $c/$2/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 \
    --warmup-tokens 2 --json $res/$1.json --markdown $res/$1.md > $res/$1.log 2>&1
  echo "$1 exit $? $(grep '^| [lq]' $res/$1.md | cut -d'|' -f4,6,7 | tr '\n' ' ')"
}
for r in 1 2; do
  (( $(date +%s) - t0 < 230 - 80 )) || break
  b old_r$r old -1; b cand_r$r cand -1; b v2_r$r cand 2; pack
done
el done
