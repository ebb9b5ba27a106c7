#!/usr/bin/env bash
# Call 2 (2026-12-06 night): L2 prefetch in decode attention. both = its blocks prefetch the o
# projection's weights (their share) and, with pending tokens, their first stages of keys before
# waiting for the q/k/v GEMV; o = 9932fda (the weights only); none = both's binary with
# KVLAB_L2_PREFETCH=0 (76fdd37's step). Tests and memcheck of both; decode A/B/C interleaved.
set -uo pipefail
c=carry/bd3
res=/tmp/resd3; mkdir -p $res
source scripts/gpu_env.sh $c/both $res
pack() { tar -C /tmp -czf $OUT/resd3.tar.gz resd3; }
nvidia-smi -L
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
for t in test_cuda_model test_cuda_ops test_cuda_leank; do
  timeout 100 $c/both/tests/$t > $res/$t.log 2>&1; echo "$t exit $?"
  grep -E '^\[  (FAILED|PASSED) |Failure|actual' $res/$t.log | head -10
done
grep -E '^llama: max' $res/test_cuda_model.log
pack
b() {  # name, build, prefetch 0/1, shape, contexts, extra options
  local name=$1 build=$2 pf=$3 shape=$4 contexts=$5; shift 5
  KVLAB_L2_PREFETCH=$pf timeout 70 $c/$build/bin/kvlab-bench --shape $shape --contexts $contexts \
    --decode-tokens 64 --warmup-tokens 8 "$@" --json $res/$name.json --markdown $res/$name.md > $res/$name.log 2>&1
  echo "$name exit $? $(grep '^| [lq]' $res/$name.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
}
el bench
round() {
  b none_r$1 both 0 llama-3.1-8b 1024,8192,32768
  b o_r$1 o 1 llama-3.1-8b 1024,8192,32768
  b both_r$1 both 1 llama-3.1-8b 1024,8192,32768
  pack
}
round 1; round 2
el memcheck
timeout 60 $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/both/tests/test_cuda_model \
  --gtest_filter='CudaModel.GraphReplayIsBitwiseEager:CudaModel.ProgrammaticLaunches*' > $res/memcheck_model.log 2>&1
echo "memcheck model exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_model.log
timeout 50 $sanitizer --tool memcheck --leak-check no --print-limit 20 $c/both/tests/test_cuda_leank \
  --gtest_filter='*ModelDecode*' > $res/memcheck_leank.log 2>&1
echo "memcheck leank exit $?"; grep -E 'ERROR SUMMARY|^\[  (FAILED|PASSED) ' $res/memcheck_leank.log
pack
el qwen-leank
b qwen_none both 0 qwen2.5-7b 1024,8192
b qwen_both both 1 qwen2.5-7b 1024,8192
b leank_none both 0 llama-3.1-8b 32768 --leank-sparsity 0.7
b leank_both both 1 llama-3.1-8b 32768 --leank-sparsity 0.7
round 3
b both_128k both 1 llama-3.1-8b 131072
pack
el done
