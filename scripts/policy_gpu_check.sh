#!/usr/bin/env bash
# Decode speed under each cache policy on the Llama-3.1-8B shape at 32K context, budget 1/4,
# the interval at its default (auto), as issue 5 measures the cost of compaction: kvlab-bench's
# `policy %` is the share of decode time spent in policy calls. Against a build made elsewhere
# (as scripts/gpu_check.sh), from the repository root; JSON and logs go to $OUT (when set).
# About 200 s on an H200.
#   bash scripts/policy_gpu_check.sh [build dir] [policies]
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh" "${1:-build-cuda}" /tmp/policy_gpu_check
policies=${2:-full lacache streaming h2o snapkv pyramidkv}

for p in $policies; do
  echo "== $p"
  timeout 150 "$build/bin/kvlab-bench" --shape llama-3.1-8b --contexts 32768 --decode-tokens 256 --cache "$p" \
    --budget 0.25 --json "$out/policy_$p.json" >"$out/policy_$p.log" 2>&1
  rc=$?
  echo "exit $rc"
  [[ $rc == 0 ]] || status=1
  tail -4 "$out/policy_$p.log"
done
exit $status
