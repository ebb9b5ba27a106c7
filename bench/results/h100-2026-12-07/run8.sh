#!/usr/bin/env bash
# Call 8 (day's fourth session): upper bounds before building anything. P = main d27bcc8's
# kvlab-bench with a probe switch in decode_attention (KVLAB_PROBE_SKIP=merge: no merge launch;
# =attention: no decode attention at all; results are wrong then, only the speed counts), three
# alternating rounds of none / merge / attention at 1K and 8K; then, if nsys is there, the
# timeline of an 8K prefill, for the gaps between kernels (their sum alone is ~5% under TTFT).
set -uo pipefail
c=carry/bd21
[[ -d $c/P ]] || tar -xJf carry/bd21.tar.xz -C carry
res=/tmp/resd21; mkdir -p $res
KVLAB_CALL_SECONDS=${KVLAB_CALL_SECONDS:-400} source scripts/gpu_env.sh $c/P $res
pack() { tar -C /tmp -czf $OUT/resd21.tar.gz resd21; }
nvidia-smi -L
for r in 1 2 3; do
  for mode in none merge attention; do
    elapsed "round $r, $mode"
    KVLAB_PROBE_SKIP=$mode timeout $(step_limit 60) $c/P/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192 \
      --decode-tokens 64 --warmup-tokens 8 --json $res/$mode$r.json >$res/$mode$r.log 2>&1 || echo "exit $?"
  done
  pack
done
python3 - $res <<'PY'
import json, sys
res = sys.argv[1]
for ctx in (1024, 8192):
    for mode in ("none", "merge", "attention"):
        v = []
        for r in (1, 2, 3):
            try:
                rows = json.load(open(f"{res}/{mode}{r}.json"))["rows"]
                v += [f'{x["decode_tokens_per_s"]:.1f}' for x in rows if x["context"] == ctx]
            except Exception as e:
                v.append(f"({e.__class__.__name__})")
        print(ctx, mode, " / ".join(v))
PY
if command -v nsys >/dev/null; then
  elapsed "nsys over an 8K prefill"
  timeout $(step_limit 150) nsys profile -o $res/prefill8k --force-overwrite true --trace cuda \
    $c/P/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 1 --warmup-tokens 0 >$res/nsys.log 2>&1
  echo "exit $?"
  timeout $(step_limit 60) nsys stats --report cuda_gpu_trace --format csv -o $res/prefill8k $res/prefill8k.nsys-rep \
    >>$res/nsys.log 2>&1
  echo "exit $?"; ls -la $res | head; gzip -f $res/*.csv; rm -f $res/prefill8k.sqlite
  pack
else
  echo "no nsys"; ls /usr/local/cuda*/bin 2>/dev/null | head -40
fi
elapsed done
