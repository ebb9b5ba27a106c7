#!/usr/bin/env bash
# Call 2 (2026-12-06, late), on call 1's machine: the peers' measure phase (kvlab = cand), then
# decode A/B, new = HEAD b22df56 against cand (+ argmax over spans), three rounds at 1K and 8K.
set -uo pipefail
tar -xJf carry/bd6.tar.xz -C carry; c=carry/bd6
res=/tmp/resd6b; mkdir -p $res
pack() { tar -C /tmp -czf $OUT/resd6b.tar.gz resd6b; }
t0=$(date +%s); el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
(OUT=/tmp/peers_out bash scripts/peers_gpu.sh measure $c/cand $c/peers) > $res/peers_measure.log 2>&1
echo "peers measure exit $?"; tail -12 $res/peers_measure.log; cp /tmp/peers_out/peers.tar.gz $res/ 2>/dev/null
pack
el ab
export LD_LIBRARY_PATH=$PWD/$c/cand/carried-lib
for r in 1 2 3; do for v in new cand; do
  timeout 45 $c/$v/bin/kvlab-bench --shape llama-3.1-8b --contexts 1024,8192 --decode-tokens 64 --warmup-tokens 8 \
    --json $res/${v}_r$r.json --markdown $res/${v}_r$r.md > $res/${v}_r$r.log 2>&1
  echo "$v r$r exit $? $(grep '^| [lq]' $res/${v}_r$r.md | cut -d'|' -f4,6,7,11 | tr '\n' ' ')"
done; pack; done
el done
