#!/bin/sh
# scripts/longbench_to_qa.py on LongBench-format lines (one LongBench-E line among them), then
# kvlab-eval --task qa on what it wrote with the prompt it wrote; and a dataset whose metric kvlab
# does not compute (trec) refused, naming the metric.
#   sh longbench_roundtrip.sh PYTHON SOURCE_DIR BIN_DIR
set -eu
py=$1 src=$2 bin=$3
here=$src/tests/scripts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$src/scripts/longbench_to_qa.py" "$here/longbench_hotpotqa.jsonl" --out "$tmp/hp.jsonl" \
  --prompts "$here/longbench_prompts.json" --maxlen "$here/longbench_maxlen.json" > "$tmp/convert.log"
grep -q -- '--max-new-tokens 16' "$tmp/convert.log"
"$py" - "$tmp/hp.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == ["hp-001", "hp-002"], rows
assert all(r["task_type"] == "qa" and "chat" not in r for r in rows), rows
assert rows[0]["question"].startswith("Which river") and rows[0]["answers"] == ["the Stour", "river Stour"], rows
PY
"$bin/kvlab-eval" --task qa --model "$src/datasets/models/tiny-random-llama" --data "$tmp/hp.jsonl" \
  --prompt-template "$(cat "$tmp/hp.jsonl.prompt.txt")" --max-new-tokens 16 --out "$tmp/report.json" > /dev/null
"$py" - "$tmp/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["metrics"]["examples"] == 2, r["metrics"].keys()
assert r["config"]["qa"]["prompt_template"].startswith("Answer from the passages."), r["config"]["qa"]
PY
if "$py" "$src/scripts/longbench_to_qa.py" "$here/longbench_trec.jsonl" --out "$tmp/trec.jsonl" 2> "$tmp/trec.err"; then
  echo "trec was converted" >&2
  exit 1
fi
grep -q 'classification_score' "$tmp/trec.err"
echo "longbench round trip ok"
