#!/usr/bin/env bash
# kvlab, llama.cpp and Hugging Face transformers decoding the Llama-3.1-8B shape on one GPU in one
# lease, for the side-by-side table of bench/README.md. The device tool gives 10 minutes a call,
# so it takes three calls on the same machine, each right after the one before (the machine is
# released when idle; llama.cpp's build and the results so far live in its /tmp). Nothing is
# timed while llama.cpp compiles, so no run shares the CPUs with the build:
#   bash scripts/peers_gpu.sh build BUILD PEERS    # ~5 min: llama.cpp built and its GGUF made
#                                                  #   (../shared/peers/llamacpp_peer.sh build)
#   bash scripts/peers_gpu.sh measure BUILD PEERS  # ~2.5 min: kvlab-bench twice at 1K-128K, then
#                                                  #   llama-bench at 1K-32K and at 128K
#   bash scripts/peers_gpu.sh hf BUILD PEERS       # ~2.5 min: the HF peer (compiled and eager,
#                                                  #   1K-32K), then the table
# BUILD: a carried kvlab build (bin/kvlab-bench, carried-lib/ as for scripts/gpu_env.sh);
# PEERS: a carried folder holding ../shared/peers/llamacpp_peer.sh, its llama.cpp tarball and the
# Llama-3.1 tokenizer.json and tokenizer_config.json (see that script). Results go to $OUT.
set -uo pipefail
if (($# != 3)) || [[ ! $1 =~ ^(build|measure|hf)$ ]]; then
  echo "usage: bash scripts/peers_gpu.sh build|measure|hf BUILD PEERS" >&2
  exit 2
fi
phase=$1 build=$2 peers=$3
keep=/tmp/peers_gpu  # survives between the calls while the machine stays warm
mkdir -p $keep
source "$(dirname "$0")/gpu_env.sh" "$build" $keep  # sets $out: $OUT, else $keep
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader

case $phase in
  build)
    bash "$peers/llamacpp_peer.sh" build
    ;;
  measure)
    for r in 1 2; do
      timeout 150 "$build/bin/kvlab-bench" --shape llama-3.1-8b --contexts 1024,8192,32768,131072 \
        --decode-tokens 64 --json $keep/kvlab$r.json > $keep/kvlab$r.log 2>&1 ||
        echo "kvlab-bench run $r failed: $(tail -1 $keep/kvlab$r.log)"
    done
    OUT=$keep timeout 150 bash "$peers/llamacpp_peer.sh" bench
    # 128K apart, one repeat of 64 tokens (tg128 x 3 at that depth would not fit the call), on
    # the model where llamacpp_peer.sh builds it.
    timeout 90 /tmp/lcpp/llama.cpp/build/bin/llama-bench -m /tmp/lcpp/m.gguf -p 0 -n 64 -d 131072 -fa 1 -ngl 99 \
      -r 1 -o json > $keep/llamacpp_128k.json 2> $keep/llamacpp_128k.err || echo "llama-bench at 128K failed"
    ;;
  hf)
    timeout 270 python3 scripts/peer_hf.py --contexts 1024,8192,32768 --json $keep/hf.json --budget-s 240 \
      > $keep/hf.log 2>&1 || echo "HF peer failed: $(tail -1 $keep/hf.log)"
    ;;
esac

# The table of what this machine has measured so far: a peer not (yet) measured leaves its
# column blank.
lcpp=() hf=()
for f in $keep/llamacpp.json $keep/llamacpp_128k.json; do [[ -s $f ]] && lcpp+=("$f"); done
[[ -s $keep/hf.json ]] && hf+=("$keep/hf.json")
if compgen -G "$keep/kvlab*.json" > /dev/null; then
  python3 scripts/peers_table.py --kvlab $keep/kvlab*.json --llamacpp "${lcpp[@]}" --hf "${hf[@]}" |
    tee $keep/peers_table.md
fi
[[ $out != "$keep" ]] && tar -C $keep -czf "$out/peers.tar.gz" .
exit 0
