#!/usr/bin/env python3
"""Derives datasets/models/tiny-random-qwen3-yarn from tiny-random-qwen3: the same weights and
tokenizer, with YaRN RoPE scaling in its config (the block Qwen2.5 and Qwen3 model cards add for
128K contexts, at the tiny model's scale).

factor 4 over 256 original positions makes 1024 = max_position_embeddings, so both ways
transformers has read such a block (factor as given, or max_position_embeddings over the
original length) give the same factor. With head_dim 32 and theta 1e6 the band edges fall at
dimensions 0.28 and 4.29: pair 0 keeps its frequency, pairs 1-4 blend, the rest are slowed, so
the golden prompt (288 tokens, past the 256 original positions) sees every branch, and the
attention factor 0.1 ln 4 + 1 = 1.139 scales every attention logit by its square.
scripts/make_goldens.py --yarn records transformers' logits for it.

  python3 scripts/derive_yarn_model.py --models datasets/models
"""
import argparse
import json
import os
import shutil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    src = os.path.join(args.models, "tiny-random-qwen3")
    dst = os.path.join(args.models, "tiny-random-qwen3-yarn")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    path = os.path.join(dst, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    theta = cfg["rope_parameters"]["rope_theta"]
    cfg["rope_parameters"] = {"rope_type": "yarn", "rope_theta": theta, "factor": 4.0,
                              "original_max_position_embeddings": 256}
    assert cfg["max_position_embeddings"] == 256 * 4
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
