#!/usr/bin/env bash
# Call 1 (2026-12-07): old = 735ada6; candA = the merge lets o launch before it waits; candB =
# candA + decode attention lets the merge launch before it waits (so o's blocks stream their
# weights in during attention); candC = candB + every decode GEMV stages its second round of
# weight loads in shared memory before it waits (candC.patch); candD = candC + prefill attention
# keeping Q in registers (candD.patch); candE = candD + prefill attention warp-specialized (two
# consumer warpgroups sharing each K/V tile, a producer warpgroup, 4 stages). GPU tests, decode
# rounds, prefill kernel benchmark and TTFT, ncu over one prefill attention launch, long contexts.
set -uo pipefail
c=carry/bd15
res=/tmp/resd15; mkdir -p $res
KVLAB_CALL_SECONDS=480 source scripts/gpu_env.sh $c/candE $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd15.tar.gz resd15; }
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem --format=csv,noheader
bench() {  # variant name contexts tokens
  LD_LIBRARY_PATH=$PWD/$c/$1/carried-lib timeout $(step_limit 90) $c/$1/bin/kvlab-bench --shape llama-3.1-8b \
    --contexts $3 --decode-tokens $4 --warmup-tokens 8 --json $res/$2.json --markdown $res/$2.md > $res/$2.log 2>&1
  echo "$2 exit $? $(grep '^| [lq]' $res/$2.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
}
elapsed tests
# candE's attention first, briefly: a broken pipeline would hang rather than fail.
run_gtest attn_candE 40 $c/candE/tests/test_cuda_ops --gtest_filter='*Attention*'
if ((status == 0)); then T=candE; P="candC candD candE"; else T=candD; P="candC candD"; status=0; fi
echo "tests on $T"
run_gtest test_cuda_ops 120 $c/$T/tests/test_cuda_ops
pack
round() {
  case $1 in 1) order="old candB candC";; 2) order="candC candB old";; 3) order="candB old candC";; esac
  for v in $order; do bench $v ${v}_r$1 $2 64; done
  pack
}
elapsed decode-round-1; round 1 1024,8192
elapsed prefill
for v in $P; do
  LD_LIBRARY_PATH=$PWD/$c/$v/carried-lib timeout $(step_limit 60) $c/$v/bin/bench_cuda_ops \
    --benchmark_filter='BM_PrefillAttention/' --benchmark_out=$res/bm_prefill_$v.json > $res/bm_prefill_$v.log 2>&1
  echo "bench $v exit $?"; grep -E '^BM_' $res/bm_prefill_$v.log | awk '{print $1, $2, $NF}'
  bench $v ttft_$v 8192,32768 8
done
pack
run_gtest test_cuda_model 120 $c/$T/tests/test_cuda_model
pack
elapsed decode-round-2; round 2 1024,8192,32768
elapsed ncu-prefill-attention
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
timeout $(step_limit 90) $ncu --set full --launch-skip 2 --launch-count 1 -k regex:prefill_attention \
  -o $res/prefill_att --force-overwrite $c/$T/bin/bench_cuda_ops \
  --benchmark_filter='BM_PrefillAttention/1024/7168' > $res/ncu_att.log 2>&1
echo "ncu exit $?"; tail -3 $res/ncu_att.log
$ncu --import $res/prefill_att.ncu-rep --page details > $res/prefill_att_details.txt 2>&1
$ncu --import $res/prefill_att.ncu-rep --page source --csv --print-source sass > $res/prefill_att_sass.csv 2>&1
grep -E 'Duration|Throughput|Warp Cycles|Issued|Eligible|Registers|Achieved Occ' $res/prefill_att_details.txt | head -30
pack
elapsed decode-round-3; round 3 1024,8192,32768
elapsed long
bench candC candC_long 131072 32
bench old old_long 131072 32
pack
for t in test_cuda_cache_ops test_cuda_leank; do run_gtest $t 120 $c/$T/tests/$t; done
pack
elapsed done
