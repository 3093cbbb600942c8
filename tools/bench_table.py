#!/usr/bin/env python3
"""Turns Google Benchmark JSON from bench_gemm and bench_conv (one run) into the markdown table
of docs/performance.md: median time, GFLOP/s, and the ratio to the raw sgemm rate measured in
the same run at the same thread count.

usage: tools/bench_table.py bench_gemm.json bench_conv.json
"""
import json
import re
import sys


def medians(paths):
    """The median aggregate of each benchmark (or the single run when not repeated)."""
    rows = []
    for path in paths:
        with open(path) as f:
            benchmarks = json.load(f)["benchmarks"]
        repeated = any("aggregate_name" in b for b in benchmarks)
        rows += [b for b in benchmarks if not repeated or b.get("aggregate_name") == "median"]
    return rows


def main(paths):
    rows = medians(paths)
    peak = {}
    for b in rows:
        m = re.match(r"BM_RawSgemm/\d+/(\d+)", b["run_name"])
        if m:
            peak[int(m.group(1))] = b["GFLOP/s"] / 1e9
    print("| benchmark | threads | median ms | GFLOP/s | % of sgemm |")
    print("|---|---|---|---|---|")
    for b in rows:
        name = b["run_name"].replace("/real_time", "")
        threads = int(name.rsplit("/", 1)[1])
        gflops = b["GFLOP/s"] / 1e9
        share = 100 * gflops / peak[threads] if threads in peak else float("nan")
        print(f"| {name.rsplit('/', 1)[0]} | {threads} | {b['real_time'] / 1e6:.3f} | "
              f"{gflops:.1f} | {share:.0f}% |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
