#!/usr/bin/env bash
# Call 1 (2026-12-06, late): cand = HEAD b22df56 + argmax over spans of the row (two launches);
# its GPU tests, decode A/B, ncu over a 1K decode step and over an 8K prefill, nsys over 1K decode steps; new =
# HEAD for the decode A/B.
set -uo pipefail
c=carry/bd6
res=/tmp/resd6; mkdir -p $res
source scripts/gpu_env.sh $c/cand $res
pack() { tar -C /tmp -czf $OUT/resd6.tar.gz resd6; }
nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem --format=csv,noheader
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local l=$(( 570 - ($(date +%s) - t0) )); echo $(( l < $1 ? (l > 1 ? l : 1) : $1 )); }  # a timeout that ends the call in time
for t in test_cuda_ops test_cuda_model test_cuda_cache_ops test_cuda_leank; do
  timeout 120 $c/cand/tests/$t > $res/$t.log 2>&1; echo "$t exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|SKIPPED' $res/$t.log | head -8
done
pack
el ab
for r in 1 2 3; do for v in new cand; do
  LD_LIBRARY_PATH=$PWD/$c/cand/carried-lib timeout 45 $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192 \
    --decode-tokens 64 --warmup-tokens 8 --json $res/${v}_r$r.json --markdown $res/${v}_r$r.md > $res/${v}_r$r.log 2>&1
  echo "$v r$r exit $? $(grep '^| [lq]' $res/${v}_r$r.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
done; done
pack
el ncu-decode
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
KVLAB_CUDA_GRAPH=0 timeout $(cap 150) $ncu --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
  --clock-control none --csv --log-file $res/ncu_decode_1k.csv $c/cand/bin/kvlab-bench --shape llama-3.1-8b \
  --contexts 1024 --decode-tokens 2 --warmup-tokens 0 > $res/ncu_decode_1k.log 2>&1
echo "ncu decode exit $? rows $(wc -l < $res/ncu_decode_1k.csv)"; gzip -f $res/ncu_decode_1k.csv
pack
el nsys-decode
nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${nsys:-none}"
if [[ -n $nsys ]]; then
  timeout $(cap 120) $nsys profile -t cuda --cuda-graph-trace=node -o $res/decode_1k -f true $c/cand/bin/kvlab-bench \
    --shape llama-3.1-8b --contexts 1024 --decode-tokens 16 --warmup-tokens 4 > $res/nsys_decode_1k.log 2>&1
  echo "nsys exit $?"
  timeout $(cap 60) $nsys stats --report cuda_gpu_trace --format csv -o $res/decode_1k $res/decode_1k.nsys-rep \
    >> $res/nsys_decode_1k.log 2>&1; gzip -f $res/decode_1k*.csv; rm -f $res/decode_1k.sqlite $res/decode_1k.nsys-rep
  ls $res
fi
pack
el ncu-prefill
KVLAB_CUDA_GRAPH=0 timeout $(cap 220) $ncu --metrics gpu__time_duration.sum --clock-control none --csv \
  --log-file $res/ncu_prefill_8k.csv $c/cand/bin/kvlab-bench --shape llama-3.1-8b \
  --contexts 8192 --decode-tokens 1 --warmup-tokens 0 > $res/ncu_prefill_8k.log 2>&1
echo "ncu prefill exit $? rows $(wc -l < $res/ncu_prefill_8k.csv)"; gzip -f $res/ncu_prefill_8k.csv
pack
el memcheck
if (( $(date +%s) - t0 < 480 )); then
  timeout $(cap 90) $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/cand/tests/test_cuda_ops \
    --gtest_filter='CudaAttention.*:CudaOps.Gemv*:CudaOps.Argmax' > $res/memcheck_ops.log 2>&1
  echo "memcheck ops exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_ops.log
  pack
fi
el done
