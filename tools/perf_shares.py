#!/usr/bin/env python3
"""Self-time shares of `perf record` profiles of dpmlab, grouped by category, as one table.

Usage: tools/perf_shares.py A.data [B.data ...]
Each file is read with `perf report --no-children --sort symbol`; every symbol goes to the first
category whose pattern it matches (docs/performance.md, "Where the time goes"). The
memmove/memset of a convolution step are counted with im2col: in the U-Net profiles they come
almost entirely from the convolutions' copies.
"""
import re
import subprocess
import sys

CATEGORIES = [
    ("sgemm (OpenBLAS kernel, packing, beta)", r"sgemm_|gemm_"),
    ("im2col / col2im and the convolutions' copies (all memmove/memset)",
     r"im2col|col2im|walk_patches|BatchPlan::run<dpm::conv2d_backward|__memmove|__memset|memset@plt"),
    ("SiLU forward / backward", r"silu_"),
    ("BatchNorm (train, eval, backward, moments)", r"batch_norm|moments"),
    ("other elementwise, broadcast, reductions",
     r"binary_|unary_|sum_reduce|broadcast|slab_|spread_windows|sum_windows|parallel_map|for_each_row"),
    ("Adam", r"[Aa]dam"),
    ("idle workers and kernel (schedule, yield, syscalls, faults)", r"\[k\]|sched_yield"),
]


def shares(path):
    report = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "symbol", "--stdio"],
        capture_output=True, text=True, check=True).stdout
    totals = {name: 0.0 for name, _ in CATEGORIES}
    totals["rest"] = 0.0
    for line in report.splitlines():
        match = re.match(r"\s+([0-9.]+)%\s+(.*)", line)
        if not match:
            continue
        percent, symbol = float(match.group(1)), match.group(2)
        name = next((n for n, pattern in CATEGORIES if re.search(pattern, symbol)), "rest")
        totals[name] += percent
    return totals


def main():
    files = sys.argv[1:]
    if not files:
        sys.exit(__doc__.strip().splitlines()[2])
    results = [shares(f) for f in files]
    print("| | " + " | ".join(files) + " |")
    print("|---|" + "---|" * len(files))
    for name in results[0]:
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f}%" for r in results) + " |")


if __name__ == "__main__":
    main()
