#!/usr/bin/env bash
# Call 1 (2026-12-06 night): new = rope + append in the q/k/v GEMV's epilogue (attention takes
# the step's tokens as pending; the merge advances the lengths), old = ca20a59 (rope + append
# folded into the decode attention blocks). GPU tests and memcheck of new; decode A/B.
set -uo pipefail
c=carry/bd1
res=/tmp/resd1; mkdir -p $res
source scripts/gpu_env.sh $c/new $res
pack() { tar -C /tmp -czf $OUT/resd1.tar.gz resd1; }
nvidia-smi -L
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
for t in test_cuda_ops test_cuda_model test_cuda_cache_ops test_cuda_leank; do
  timeout 100 $c/new/tests/$t > $res/$t.log 2>&1; echo "$t exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|actual|appending|unwritten' $res/$t.log | head -10
done
pack
el memcheck
timeout 80 $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/new/tests/test_cuda_ops \
  --gtest_filter='CudaAttention.AttentionInputAttends:CudaOps.Matmul*:CudaOps.Gemv*' > $res/memcheck_ops.log 2>&1
echo "memcheck ops exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_ops.log
pack
b() {  # name, build, shape, contexts, extra options
  local name=$1 build=$2 shape=$3 contexts=$4; shift 4
  LD_LIBRARY_PATH=$PWD/$c/$build/carried-lib timeout 60 $c/$build/bin/kvlab-bench --shape $shape --contexts $contexts \
    --decode-tokens 64 --warmup-tokens 8 "$@" --json $res/$name.json --markdown $res/$name.md > $res/$name.log 2>&1
  echo "$name exit $? $(grep '^| [lq]' $res/$name.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
}
el bench
for r in 1 2; do
  b old_r$r old llama-3.1-8b 1024,8192,32768
  b new_r$r new llama-3.1-8b 1024,8192,32768
  pack
done
for v in old new; do
  LD_LIBRARY_PATH=$PWD/$c/$v/carried-lib timeout 40 $c/$v/bin/bench_cuda_ops --benchmark_filter='DecodeAttentionStep' \
    > $res/bm_step_$v.log 2>&1
  echo "$v"; grep -E '^BM_' $res/bm_step_$v.log | cut -c1-100
done
pack
el qwen-leank
b qwen_old old qwen2.5-7b 1024,8192
b qwen_new new qwen2.5-7b 1024,8192
pack
b leank_old old llama-3.1-8b 32768 --leank-sparsity 0.7
b leank_new new llama-3.1-8b 32768 --leank-sparsity 0.7
b old_r3 old llama-3.1-8b 1024,8192
b new_r3 new llama-3.1-8b 1024,8192
pack
el done
