#!/usr/bin/env bash
# Call 14 (the day's sixth session): C = branch wip/ttft (main + the last layer pruned to the rows
# whose logits are wanted + the MLP's scratch in bf16 + the prefill attention grid (head, query
# tile); calls 11 and 12 folded into one) against M = main 62781f1, both in carry/bd25.tar.xz.
# C's GPU tests, memcheck over the MLP, prefill-attention and pruned-prefill tests, then TTFT,
# decode and peak memory of M at --chunk 1024 (the default), C at 1024 and C at 4096, three
# alternating rounds, then BM_PrefillAttention of M and C.
set -uo pipefail
c=carry/bd25
res=/tmp/resd25; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-570} source scripts/gpu_env.sh $c/C $res
nvidia-smi -L
run_gtest ops_C 60 $c/C/tests/test_cuda_ops
run_gtest model_C 90 $c/C/tests/test_cuda_model
run_gtest leank_C 40 $c/C/tests/test_cuda_leank
run_gtest cache_C 40 $c/C/tests/test_cuda_cache_ops
run_sanitizer memcheck memcheck_ops_C 60 $c/C/tests/test_cuda_ops \
  --gtest_filter='CudaOps.Mlp:CudaOps.MatmulSwiglu:CudaAttention.Prefill*'
run_sanitizer memcheck memcheck_model_C 60 $c/C/tests/test_cuda_model --gtest_filter='*PrefillWithout*'
pack_results $res
if ((status == 0)); then
  for r in 1 2 3; do
    for run in M:1024 C:1024 C:4096; do
      build=${run%:*} chunk=${run#*:}
      elapsed "round $r, $build at chunk $chunk"
      timeout $(step_limit 60) $c/$build/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192,32768 \
        --chunk $chunk --decode-tokens 32 --warmup-tokens 4 --json $res/$build$chunk-$r.json \
        >$res/$build$chunk-$r.log 2>&1 || echo "exit $?"
    done
    pack_results $res
  done
  python3 - $res <<'PY'
import json, sys
res = sys.argv[1]
for ctx in (1024, 8192, 32768):
    for run in ("M1024", "C1024", "C4096"):
        rows = []
        for r in (1, 2, 3):
            try:
                rows += [x for x in json.load(open(f"{res}/{run}-{r}.json"))["rows"] if x["context"] == ctx]
            except Exception as e:
                print(ctx, run, r, e.__class__.__name__)
        f = lambda k, fmt: " / ".join(fmt.format(x[k]) for x in rows)
        print(ctx, run, "TTFT", f("ttft_s", "{:.3f}"), "| tok/s", f("decode_tokens_per_s", "{:.1f}"),
              "| % roofline", " / ".join(f"{100 * x['roofline_fraction']:.1f}" for x in rows),
              "| peak GiB", " / ".join(f"{x['peak_bytes'] / 2**30:.2f}" for x in rows))
PY
  for build in M C; do
    elapsed "BM_PrefillAttention, $build"
    timeout $(step_limit 40) $c/$build/bin/bench_cuda_ops --benchmark_filter='BM_PrefillAttention' \
      >$res/bm_$build.log 2>&1 || echo "exit $?"
    grep -E '^BM_PrefillAttention' $res/bm_$build.log | cut -c1-110
  done
  pack_results $res
fi
elapsed "done, status $status"
