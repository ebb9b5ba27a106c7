#!/usr/bin/env bash
# Speed of two builds of kvlab-bench on one machine, for judging a kernel or backend change:
# the two run in turns (A, B, A, B, ...) so that clock and temperature drift reach both alike,
# each writing its JSON, then one table gives decode tokens/s, % of roofline and TTFT per
# context for each run, and B over A from the median of each side's runs.
#   bash scripts/bench_ab.sh BUILD_A BUILD_B [kvlab-bench arguments...]
# e.g. bash scripts/bench_ab.sh carry/old carry/new --shape llama-3.1-8b --contexts 1024,8192
# KVLAB_AB_ROUNDS (default 2) runs per build; JSON and logs go to $OUT (default /tmp/bench_ab).
set -euo pipefail
if (($# < 2)); then
  echo "usage: bash scripts/bench_ab.sh BUILD_A BUILD_B [kvlab-bench arguments...]" >&2
  exit 2
fi
a=$1 b=$2
shift 2
rounds=${KVLAB_AB_ROUNDS:-2}
out=${OUT:-/tmp/bench_ab}
mkdir -p "$out"
for build in "$a" "$b"; do
  [[ -x $build/bin/kvlab-bench ]] || { echo "bench_ab: no $build/bin/kvlab-bench" >&2; exit 2; }
done

for ((r = 1; r <= rounds; r++)); do
  for side in A B; do
    build=$a
    [[ $side == B ]] && build=$b
    echo "bench_ab: round $r, $side ($build)"
    "$build/bin/kvlab-bench" "$@" --json "$out/$side$r.json" >"$out/$side$r.log" 2>&1 ||
      { echo "bench_ab: $side round $r failed:" >&2; tail -5 "$out/$side$r.log" >&2; exit 1; }
  done
done

python3 - "$out" "$rounds" "$a" "$b" <<'EOF'
import json, statistics, sys
out, rounds, name = sys.argv[1], int(sys.argv[2]), {"A": sys.argv[3], "B": sys.argv[4]}
rows = {}  # (side, context) -> list of rows
for side in "AB":
    for r in range(1, rounds + 1):
        for row in json.load(open(f"{out}/{side}{r}.json"))["rows"]:
            rows.setdefault((side, row["context"]), []).append(row)
print(f"A: {name['A']}\nB: {name['B']}\n")
print("| context | A tok/s | B tok/s | B / A | A % roofline | B % roofline | A TTFT s | B TTFT s |")
print("| ---: | --- | --- | ---: | --- | --- | --- | --- |")
for ctx in sorted({c for _, c in rows}):
    a, b = rows.get(("A", ctx), []), rows.get(("B", ctx), [])
    if not a or not b:
        continue
    fmt = lambda rs, key, f: " / ".join(f.format(x[key]) for x in rs)
    ratio = statistics.median(x["decode_tokens_per_s"] for x in b) / statistics.median(x["decode_tokens_per_s"] for x in a)
    pct = lambda rs: " / ".join(f"{100 * x['roofline_fraction']:.1f}" for x in rs)
    print(f"| {ctx} | {fmt(a, 'decode_tokens_per_s', '{:.1f}')} | {fmt(b, 'decode_tokens_per_s', '{:.1f}')} | "
          f"{ratio:.3f} | {pct(a)} | {pct(b)} | {fmt(a, 'ttft_s', '{:.3f}')} | {fmt(b, 'ttft_s', '{:.3f}')} |")
EOF
