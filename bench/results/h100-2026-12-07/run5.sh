#!/usr/bin/env bash
# Call 5 (prepared in the day's third session, run in the fourth): J2 = main
# fa1e6ff + two_tiles_main.patch (decode attention splits of at least two 64-key tiles, without
# call 4's merge fold) against F = main fa1e6ff, both in carry/bd20.tar.xz. J2's GPU tests that
# the plan touches, then scripts/bench_ab.sh F against J2 at 1K and 8K (three alternating rounds,
# the medians' ratio) if they pass, then memcheck over J2's attention tests.
set -uo pipefail
c=carry/bd20
[[ -d $c/F ]] || tar -xJf carry/bd20.tar.xz -C carry
res=/tmp/resd20; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-360} source scripts/gpu_env.sh $c/J2 $res  # step_limit, elapsed, run_gtest
pack() { tar -C /tmp -czf $OUT/resd20.tar.gz resd20; }
nvidia-smi -L
run_gtest attn_J2 40 $c/J2/tests/test_cuda_ops --gtest_filter='*Attention*'
run_gtest model_J2 60 $c/J2/tests/test_cuda_model
run_gtest leank_J2 40 $c/J2/tests/test_cuda_leank
pack
if ((status == 0)); then
  elapsed "decode: F against J2"
  OUT=$res/ab_J2 KVLAB_AB_ROUNDS=3 timeout $(step_limit 150) bash scripts/bench_ab.sh $c/F $c/J2 \
    --shape llama-3.1-8b --contexts 1024,8192 --decode-tokens 64 --warmup-tokens 8 | tee $res/ab_J2.md
  pack
fi
run_sanitizer memcheck memcheck_J2 40 $c/J2/tests/test_cuda_ops --gtest_filter='*Attention*'
pack
elapsed done
