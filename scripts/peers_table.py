#!/usr/bin/env python3
"""The side-by-side decode table of bench/README.md from one lease's JSON files.

kvlab-bench --json files (one or more runs: each context's median), llama-bench -o json files
(tg rows, n_depth = context) and scripts/peer_hf.py --json files, all measured on the same GPU;
prints a Markdown table: per context the roofline (from kvlab's run: weights + KV a step reads
over the copy rate it measured), kvlab, its % of the roofline, llama.cpp, HF compiled and eager,
and kvlab over llama.cpp. A peer that has no row for a context shows a blank.

    python3 scripts/peers_table.py --kvlab k1.json k2.json --llamacpp lcpp.json --hf hf.json
"""
import argparse
import json
import statistics
import sys


def medians(rows_by_context):
    return {c: statistics.median(v) for c, v in rows_by_context.items()}


def kvlab_runs(paths):
    tok, roof = {}, {}
    for p in paths:
        for row in json.load(open(p))["rows"]:
            tok.setdefault(row["context"], []).append(row["decode_tokens_per_s"])
            roof.setdefault(row["context"], []).append(row["roofline_tokens_per_s"])
    return medians(tok), medians(roof)


def llamacpp_runs(paths):
    tok = {}
    for p in paths:
        for row in json.load(open(p)):
            if row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:  # tg rows only
                tok.setdefault(row["n_depth"], []).append(row["avg_ts"])
    return medians(tok)


def hf_runs(paths):
    tok = {"compile": {}, "eager": {}}
    for p in paths:
        for row in json.load(open(p))["rows"]:
            tok[row["mode"]].setdefault(row["context"], []).append(row["decode_tokens_per_s"])
    return {mode: medians(v) for mode, v in tok.items()}


def cell(v, fmt="{:.1f}"):
    return fmt.format(v) if v is not None else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kvlab", nargs="+", required=True, help="kvlab-bench --json files")
    ap.add_argument("--llamacpp", nargs="*", default=[], help="llama-bench -o json files")
    ap.add_argument("--hf", nargs="*", default=[], help="scripts/peer_hf.py --json files")
    args = ap.parse_args()
    try:
        kv, roof = kvlab_runs(args.kvlab)
        lc = llamacpp_runs(args.llamacpp)
        hf = hf_runs(args.hf)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"peers_table: {e}")
    print("| context | roofline | **kvlab** | % roofline | llama.cpp | HF compile | HF eager | kvlab / llama.cpp |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in sorted(kv):
        ratio = kv[c] / lc[c] if c in lc else None
        print(f"| {c} | {roof[c]:.1f} | **{kv[c]:.1f}** | {100 * kv[c] / roof[c]:.1f}% | {cell(lc.get(c))} | "
              f"{cell(hf['compile'].get(c))} | {cell(hf['eager'].get(c))} | {cell(ratio, '{:.2f}x')} |")


if __name__ == "__main__":
    main()
