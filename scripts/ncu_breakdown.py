#!/usr/bin/env python3
"""Where a forward pass's time goes, from an ncu CSV of kvlab-bench (or any kvlab run).

  ncu --metrics gpu__time_duration.sum[,dram__bytes_read.sum,dram__bytes_write.sum] --csv \
      --log-file run.csv kvlab-bench --shape llama-3.1-8b --contexts 1024 --decode-tokens 2
  python3 scripts/ncu_breakdown.py run.csv[.gz] [--passes all|last|K,L,...|K-L]

A pass is what runs from one embedding lookup to the next (a prefill chunk or a decode step).
For the chosen passes it prints each kernel kind (function name and grid; cuBLAS kernels by
name) with its launches, time and, where ncu measured DRAM bytes, the bandwidth it reached.
Each kernel is timed alone by ncu (caches flushed unless told otherwise), so the sum exceeds a
real run's time by whatever the programmatic launches overlap.

It reads the in-run trace of bench/kernel_trace.cpp (libkvlab_kernel_trace.so) the same way:

  CUDA_INJECTION64_PATH=build/bin/libkvlab_kernel_trace.so KVLAB_KERNEL_TRACE=trace.csv \
      kvlab-bench --shape llama-3.1-8b --contexts 8192 --decode-tokens 2
  python3 scripts/ncu_breakdown.py trace.csv --passes 1-8

where each kernel's time is its span in that run, at the clocks it ran at, and each breakdown
also gives the passes' span from first start to last end and how much of it no kernel ran.
"""
import argparse
import collections
import csv
import gzip
import io
import re
import sys


# ncu's units depend on its version and the value's size.
TIME_NS = {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9, "second": 1e9}
BYTES = {"B": 1, "byte": 1, "KB": 1e3, "Kbyte": 1e3, "MB": 1e6, "Mbyte": 1e6, "GB": 1e9, "Gbyte": 1e9}


def read_rows(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        text = f.read()
    if text.startswith("start_ns,"):  # kernel_trace's
        return list(csv.DictReader(io.StringIO(text)))
    # ncu writes its own log lines (==PROF==, ==WARNING==) before the table.
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"{path}: no ncu CSV table or kernel trace found")
    return list(csv.DictReader(io.StringIO(text[start:])))


def kernel_kind(name):
    """Our kernels by their function name; library kernels (cuBLAS, CUTLASS) as one kind."""
    base = re.sub(r"^void |<unnamed>::|\(anonymous namespace\)::", "", name)
    base = re.split(r"[<(]", base, maxsplit=1)[0].split("::")[-1]
    if re.search(r"gemm|nvjet|cutlass|xmma|cublas", name, re.I) and "kvlab" not in name:
        return "cublas " + base[:40]
    return base


def trace_kernel(line, r):
    """A kernel of kernel_trace's CSV (its row on `line`), or exit saying what is wrong with it."""
    try:
        start, end = int(r["start_ns"]), int(r["end_ns"])
    except (TypeError, ValueError):
        sys.exit(f"kernel trace line {line}: start_ns and end_ns must be integers: {r}")
    if end < start or r["name"] is None:
        sys.exit(f"kernel trace line {line}: a kernel needs start_ns <= end_ns and a name: {r}")
    return {"name": r["name"], "grid": r["grid"], "start": start, "end": end, "ns": float(end - start), "bytes": None}


def kernels(rows):
    """One record per profiled kernel, in launch order: kind, grid, time (ns), DRAM bytes; from a
    trace, also its start and end (ns)."""
    if rows and "start_ns" in rows[0]:
        return [trace_kernel(i + 2, r) for i, r in enumerate(rows)]
    by_id = collections.OrderedDict()
    for r in rows:
        k = by_id.setdefault(r["ID"], {"name": r["Kernel Name"], "grid": r["Grid Size"], "ns": 0.0, "bytes": None})
        value = float(r["Metric Value"].replace(",", ""))
        unit = r["Metric Unit"]
        if r["Metric Name"] == "gpu__time_duration.sum":
            k["ns"] = value * TIME_NS[unit]
        elif r["Metric Name"].startswith("dram__bytes"):
            k["bytes"] = (k["bytes"] or 0.0) + value * BYTES[unit]
    return list(by_id.values())


def passes(ks):
    """Kernels cut at each embedding lookup; what runs before the first one (weights made,
    the copy kernel timed) is dropped."""
    out, cur = [], None
    for k in ks:
        if kernel_kind(k["name"]) == "embedding_kernel":
            cur = []
            out.append(cur)
        if cur is not None:
            cur.append(k)
    return out


def busy_ns(ks):
    """Time with at least one kernel running: programmatic launches overlap their neighbours."""
    busy, reach = 0, 0
    for k in sorted(ks, key=lambda k: k["start"]):
        busy += max(0, k["end"] - max(k["start"], reach))  # what lies beyond the kernels before it
        reach = max(reach, k["end"])
    return busy


def summarize(title, ks):
    total = sum(k["ns"] for k in ks)
    groups = collections.OrderedDict()
    for k in ks:
        g = groups.setdefault((kernel_kind(k["name"]), k["grid"]), {"n": 0, "ns": 0.0, "bytes": None})
        g["n"] += 1
        g["ns"] += k["ns"]
        if k["bytes"] is not None:
            g["bytes"] = (g["bytes"] or 0.0) + k["bytes"]
    print(f"\n## {title}: {len(ks)} kernels, {total / 1e3:.1f} us\n")
    if ks and "start" in ks[0]:
        span = max(k["end"] for k in ks) - min(k["start"] for k in ks)
        busy = busy_ns(ks)
        print(f"In the run: {span / 1e3:.1f} us from the first kernel's start to the last one's end, "
              f"{busy / 1e3:.1f} us with a kernel running, {(span - busy) / 1e3:.1f} us "
              f"({100 * (span - busy) / span:.1f}%) with none\n")
    print("| kernel | grid | launches | us | us each | share | GB/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (kind, grid), g in sorted(groups.items(), key=lambda kv: -kv[1]["ns"]):
        rate = f"{g['bytes'] / g['ns']:.0f}" if g["bytes"] is not None and g["ns"] else ""
        print(f"| {kind} | {grid} | {g['n']} | {g['ns'] / 1e3:.1f} | {g['ns'] / g['n'] / 1e3:.2f} | "
              f"{100 * g['ns'] / total:.1f}% | {rate} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--passes", default="last",
                    help="all (summed), last, pass numbers from 0 (1,2: each apart) or a range (1-8: summed)")
    args = ap.parse_args()
    ps = passes(kernels(read_rows(args.csv)))
    if not ps:
        sys.exit(f"{args.csv}: no embedding kernel, so no forward pass to break down")
    print(f"{len(ps)} passes: " + ", ".join(f"{i}: {len(p)} kernels {sum(k['ns'] for k in p) / 1e3:.0f} us"
                                            for i, p in enumerate(ps)))
    if args.passes == "all":
        summarize(f"all {len(ps)} passes", [k for p in ps for k in p])
    elif args.passes == "last":
        summarize(f"pass {len(ps) - 1}", ps[-1])
    elif "-" in args.passes:
        first, last = (int(x) for x in args.passes.split("-"))
        if not 0 <= first <= last < len(ps):
            sys.exit(f"passes {args.passes} out of range: {len(ps)} passes")
        summarize(f"passes {first}-{last}", [k for p in ps[first:last + 1] for k in p])
    else:
        for i in (int(x) for x in args.passes.split(",")):
            if not 0 <= i < len(ps):
                sys.exit(f"pass {i} out of range: {len(ps)} passes")
            summarize(f"pass {i}", ps[i])


if __name__ == "__main__":
    main()
