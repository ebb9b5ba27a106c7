#!/usr/bin/env bash
# Call 2 (2026-12-07): E = main de27bf0 (prefill attention warp-specialized); F = E + fewer
# instructions a tile (the scores' scale folded into the exponent's FFMA, the output's rescale
# only where a row of the warp has a new max, the causal mask only on tiles that need it, the
# producer's copy offsets worked out once). GPU tests and memcheck of F, then the prefill
# attention benchmark and TTFT in alternating rounds, then ncu over one F launch.
set -uo pipefail
c=carry/bd16
res=/tmp/resd16; mkdir -p $res
KVLAB_CALL_SECONDS=330 source scripts/gpu_env.sh $c/F $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd16.tar.gz resd16; }
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem --format=csv,noheader
elapsed tests
run_gtest attn_F 40 $c/F/tests/test_cuda_ops --gtest_filter='*Attention*'
if ((status == 0)); then T=F; P="E F F E"; else T=E; P="E"; status=0; fi
echo "tests on $T"
run_gtest test_cuda_ops 120 $c/$T/tests/test_cuda_ops
timeout $(step_limit 120) $sanitizer --tool memcheck --error-exitcode 1 $c/$T/tests/test_cuda_ops \
  --gtest_filter='*Attention*' > $res/memcheck_$T.log 2>&1
echo "memcheck exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' $res/memcheck_$T.log | head -5
pack
elapsed prefill-rounds
i=0
for v in $P; do
  i=$((i + 1))
  timeout $(step_limit 60) $c/$v/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention/' \
    --benchmark_out=$res/bm_prefill_${v}_$i.json > $res/bm_prefill_${v}_$i.log 2>&1
  echo "bench $v exit $?: $(grep -E '^BM_' $res/bm_prefill_${v}_$i.log | awk '{printf "%s ", $2}')"
  timeout $(step_limit 90) $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 8 \
    --warmup-tokens 8 --json $res/ttft_${v}_$i.json --markdown $res/ttft_${v}_$i.md > $res/ttft_${v}_$i.log 2>&1
  echo "ttft $v exit $? $(grep '^| [lq]' $res/ttft_${v}_$i.md | cut -d'|' -f4,6 | tr '\n' ' ')"
  pack
done
run_gtest test_cuda_model 120 $c/$T/tests/test_cuda_model
pack
elapsed ncu
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
timeout $(step_limit 90) $ncu --set full --launch-skip 2 --launch-count 1 -k regex:prefill_attention \
  -o $res/prefill_att --force-overwrite $c/$T/bin/bench_cuda_ops \
  --benchmark_filter='BM_PrefillAttention/1024/7168' > $res/ncu_att.log 2>&1
echo "ncu exit $?"
$ncu --import $res/prefill_att.ncu-rep --page details > $res/prefill_att_details.txt 2>&1
$ncu --import $res/prefill_att.ncu-rep --page source --csv --print-source sass > $res/prefill_att_sass.csv 2>&1
grep -E 'Duration|Compute \(SM\)|Issue Slots|Issued Instructions  ' $res/prefill_att_details.txt | head
rm -f $res/prefill_att.ncu-rep
pack
elapsed done
