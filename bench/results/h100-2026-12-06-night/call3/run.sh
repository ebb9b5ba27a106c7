#!/usr/bin/env bash
# Call 3 (2026-12-06 night, on call 2's machine while still held): none = 76fdd37's kvlab-bench
# (call 1's new), kv = call 2's `both` binary with KVLAB_L2_PREFETCH=0 (the keys' prefetch only).
tar -xJf carry/bd4.tar.xz -C carry && c=carry/bd4 && export LD_LIBRARY_PATH=$PWD/carry/bd3/both/carried-lib
for r in 1 2 3; do for v in none kv; do
  KVLAB_L2_PREFETCH=0 timeout 40 $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192 --decode-tokens 64 \
    --warmup-tokens 8 --markdown $OUT/${v}_r$r.md > $OUT/${v}_r$r.log 2>&1
  echo "$v r$r exit $? $(grep '^| [lq]' $OUT/${v}_r$r.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
done; done
