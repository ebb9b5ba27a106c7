#!/usr/bin/env bash
# The three peers' calls on one H100, back to back (the machine of call 1, still held):
#   after call 1:  bash scripts/peers_gpu.sh build carry/bd6/cand carry/bd6/peers   (221 s)
#   call 2:        ../call2/run.sh (its first step: peers_gpu.sh measure)            (241 s)
#   call 3:        the HF phase and the table, below                                 (116 s)
# carry/bd6/peers held ../shared/peers/llamacpp_peer.sh, its llama.cpp tarball and the Llama-3.1
# tokenizer.json / tokenizer_config.json; cand = 74f9d48's build.
set -uo pipefail
tar -xJf carry/bd6.tar.xz -C carry; c=carry/bd6
(OUT=/tmp/peers_out bash scripts/peers_gpu.sh hf $c/cand $c/peers) > /tmp/peers_hf.log 2>&1
echo "peers hf exit $?"; tail -15 /tmp/peers_hf.log
cp /tmp/peers_out/peers.tar.gz /tmp/peers_hf.log $OUT/
