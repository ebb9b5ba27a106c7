#!/usr/bin/env bash
# Call 9 (day's fourth session): the prefill chunk, measured properly (call 3 had two rounds
# each): kvlab-bench of main d27bcc8 (carry/bd21's P, no probe switch set) at --chunk 1024 (the
# default), 2048 and 4096, three alternating rounds, TTFT and peak memory at 8K and 32K.
set -uo pipefail
c=carry/bd21
[[ -d $c/P ]] || tar -xJf carry/bd21.tar.xz -C carry
res=/tmp/resd21c; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-400} source scripts/gpu_env.sh $c/P $res
pack() { tar -C /tmp -czf $OUT/resd21c.tar.gz resd21c; }
nvidia-smi -L
for r in 1 2 3; do
  for chunk in 1024 2048 4096; do
    elapsed "round $r, chunk $chunk"
    timeout $(step_limit 60) $c/P/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --chunk $chunk \
      --decode-tokens 16 --warmup-tokens 4 --json $res/chunk$chunk-$r.json >$res/chunk$chunk-$r.log 2>&1 ||
      echo "exit $?"
  done
  pack
done
python3 - $res <<'PY'
import json, sys
res = sys.argv[1]
for ctx in (8192, 32768):
    for chunk in (1024, 2048, 4096):
        t, m = [], []
        for r in (1, 2, 3):
            try:
                rows = json.load(open(f"{res}/chunk{chunk}-{r}.json"))["rows"]
                t += [f'{x["ttft_s"]:.3f}' for x in rows if x["context"] == ctx]
                m += [f"{x['peak_bytes'] / 2**30:.2f}" for x in rows if x["context"] == ctx]
            except Exception as e:
                t.append(f"({e.__class__.__name__})")
        print(ctx, chunk, "TTFT", " / ".join(t), "peak GiB", " / ".join(m))
PY
elapsed done
