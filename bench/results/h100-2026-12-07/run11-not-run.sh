#!/usr/bin/env bash
# Call 11 (prepared in the day's fifth session, not run: its device time was spent): T = branch
# wip/mlp-scratch 918a72b (the MLP's scratch in Backend::mlp_scratch_dtype, bf16 on CUDA, gate
# and up adjacent: 86 KB a token less workspace) against M = main 8e2844e, both in
# carry/bd23.tar.xz. T's GPU tests, memcheck over its MLP tests, then TTFT, decode and peak memory
# of M at --chunk 1024 (the default), T at 1024 and T at 4096 (call 9: 4096 is 1.8% faster at 8K
# but over the memory target with main's workspace), three alternating rounds.
set -uo pipefail
c=carry/bd23
res=/tmp/resd23; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-560} source scripts/gpu_env.sh $c/T $res
nvidia-smi -L
run_gtest ops_T 60 $c/T/tests/test_cuda_ops
run_gtest model_T 90 $c/T/tests/test_cuda_model
run_gtest leank_T 40 $c/T/tests/test_cuda_leank
run_sanitizer memcheck memcheck_T 60 $c/T/tests/test_cuda_ops --gtest_filter='CudaOps.Mlp:CudaOps.MatmulSwiglu'
pack_results $res
if ((status == 0)); then
  for r in 1 2 3; do
    for run in M:1024 T:1024 T:4096; do
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
    for run in ("M1024", "T1024", "T4096"):
        rows = []
        for r in (1, 2, 3):
            try:
                rows += [x for x in json.load(open(f"{res}/{run}-{r}.json"))["rows"] if x["context"] == ctx]
            except Exception as e:
                print(ctx, run, r, e.__class__.__name__)
        f = lambda k, fmt: " / ".join(fmt.format(x[k]) for x in rows)
        print(ctx, run, "TTFT", f("ttft_s", "{:.3f}"), "| tok/s", f("decode_tokens_per_s", "{:.1f}"),
              "| peak GiB", " / ".join(f"{x['peak_bytes'] / 2**30:.2f}" for x in rows))
PY
fi
elapsed "done, status $status"
