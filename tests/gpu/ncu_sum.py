#!/usr/bin/env python3
"""Sum Nsight Compute's raw CSV (gpu__time_duration.sum) per kernel name.

usage: ncu_sum.py FILE.csv [STEPS]   (STEPS: profiled forward steps, default 3)
Prints, per kernel, the launches per step, microseconds per step and share.
"""
import csv
import re
import sys
from collections import defaultdict


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.reader(lines))
    if not rows:
        print(f"{path}: no kernel rows")
        return 1
    head = rows[0]
    ki = head.index("Kernel Name")
    ti = head.index("gpu__time_duration.sum")
    tot = defaultdict(float)
    cnt = defaultdict(int)
    unit = rows[1][ti] if len(rows) > 1 else ""
    for r in rows[2:] if unit in ("ns", "usecond", "nsecond", "msecond") else rows[1:]:
        try:
            v = float(r[ti].replace(",", ""))
        except ValueError:
            continue
        name = re.sub(r"\(.*", "", r[ki])[:60]
        tot[name] += v
        cnt[name] += 1
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
    all_us = sum(tot.values()) * scale
    print(f"{'kernel':<60} {'n/step':>7} {'us/step':>9} {'share':>6}")
    for k in sorted(tot, key=lambda k: -tot[k]):
        us = tot[k] * scale / steps
        print(f"{k:<60} {cnt[k] / steps:7.1f} {us:9.1f} {100 * tot[k] * scale / all_us:5.1f}%")
    print(f"{'total':<60} {sum(cnt.values()) / steps:7.1f} {all_us / steps:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
