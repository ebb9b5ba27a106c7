#!/usr/bin/env python3
"""Records which original token positions the LaCache reference code keeps in every layer.

The reference is GATECH-EIC/LaCache (commit 0f27c33), file ppl/lacache/kv_cache.py; kvlab does
not ship it. Fetch that file yourself and pass its path. The script replays the reference's own
streaming protocol (ppl/run.py): tokens fed one at a time from the first token, the cache
applied after every step. Each layer's "key" tensor holds the original position of every
cached token, so after gathering it says exactly which tokens survive.

  python3 scripts/make_lacache_goldens.py --reference kv_cache.py --out tests/golden/lacache.safetensors

Output: for each case "L{layers}_C{cache}_S{span}_O{overlap}_T{tokens}", an I32 tensor
[checkpoints, layers, max kept] of original positions at the steps listed in its metadata,
padded with -1 (the cache's length changes from step to step).
"""
import argparse
import importlib.util
import json

import torch
from safetensors.torch import save_file

# (layers, cache_size, span, overlap, tokens): the paper's settings and awkward small ones.
CASES = [
    (32, 256, 16, 0, 2048),
    (32, 256, 8, 4, 2048),
    (32, 256, 8, 0, 2048),
    (28, 128, 14, 0, 1500),
    (24, 128, 9, 7, 1500),
    (24, 200, 9, 3, 1500),
    (4, 12, 2, 0, 300),
    (8, 64, 4, 0, 3000),
    (3, 64, 2, 0, 1232),
    (16, 100, 5, 2, 1000),
    (6, 40, 3, 1, 800),
]
CHECKPOINTS = 4


def load_reference(path):
    spec = importlib.util.spec_from_file_location("lacache_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LaCache


def replay(LaCache, layers, cache_size, span, overlap, tokens):
    cache = LaCache(cache_size=cache_size, span=span, overlap=overlap)
    pkv = None
    steps = sorted({tokens * (i + 1) // CHECKPOINTS - 1 for i in range(CHECKPOINTS)})
    snapshots = []
    for t in range(tokens):
        new = torch.full((1, 1, 1, 1), float(t))
        if pkv is None:
            pkv = [[new.clone(), new.clone()] for _ in range(layers)]
        else:
            pkv = [[torch.cat([k, new], dim=2), torch.cat([v, new], dim=2)] for k, v in pkv]
        pkv = cache(pkv)
        if t in steps:
            snapshots.append(torch.stack([k[0, 0, :, 0] for k, _ in pkv]).to(torch.int32))
    width = max(s.shape[1] for s in snapshots)
    padded = torch.full((len(snapshots), layers, width), -1, dtype=torch.int32)
    for i, s in enumerate(snapshots):
        padded[i, :, : s.shape[1]] = s
    return steps, padded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="path to LaCache's ppl/lacache/kv_cache.py")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    LaCache = load_reference(args.reference)
    tensors, meta = {}, {}
    for layers, cache_size, span, overlap, tokens in CASES:
        name = f"L{layers}_C{cache_size}_S{span}_O{overlap}_T{tokens}"
        steps, kept = replay(LaCache, layers, cache_size, span, overlap, tokens)
        tensors[name] = kept.contiguous()
        meta[name] = json.dumps({"layers": layers, "cache_size": cache_size, "span": span, "overlap": overlap,
                                 "sinks": 4, "tokens": tokens, "steps": steps})
        print(f"{name}: at most {kept.shape[2]} kept per layer; union at end {len(set(kept[-1].flatten().tolist()) - {-1})}")
    save_file(tensors, args.out, metadata=meta)


if __name__ == "__main__":
    main()
