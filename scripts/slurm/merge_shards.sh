#!/usr/bin/env bash
# Merges the shards of a sweep (results.shard-I-of-N.jsonl, failures.shard-I-of-N.jsonl in one
# results directory) into results.jsonl and failures.jsonl. Idempotent: run it as often as you
# like, e.g. while some shards are still running.
#
#   scripts/slurm/merge_shards.sh RESULTS_DIR [--bin DIR]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${KVLAB_BIN:-$here/../../build/bin}
dir=""
while (($#)); do
  case $1 in
    --bin) bin=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) [[ -z $dir ]] || { echo "merge_shards.sh: one results directory only" >&2; exit 2; }; dir=$1; shift ;;
  esac
done
[[ -n $dir ]] || { echo "usage: merge_shards.sh RESULTS_DIR [--bin DIR]" >&2; exit 2; }
exec "$bin/kvlab-sweep" --merge "$dir"
