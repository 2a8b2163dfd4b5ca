#!/usr/bin/env python3
"""compare_runs.py A B [REL] - two llm-run outputs (JSONL answers with
logprobs) must give the same tokens, and log-probabilities within REL
relative (default 1e-5; absolute below 1)."""
import json
import sys


def load(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[r["id"]] = r
    return out


def logprobs(r):
    vals = []
    for tok in r.get("logprobs") or []:
        vals.append(tok["logprob"])
        for alt in tok.get("top") or []:
            vals.append(alt["logprob"])
    return vals


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    rel = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    if sorted(a) != sorted(b):
        print(f"different answers: {sorted(a)} vs {sorted(b)}")
        return 1
    worst = 0.0
    for k in a:
        if "error" in a[k] or "error" in b[k]:
            print(f"{k}: an error line: {a[k].get('error')} / {b[k].get('error')}")
            return 1
        if a[k]["output_ids"] != b[k]["output_ids"]:
            print(f"{k}: tokens differ: {a[k]['output_ids']} vs {b[k]['output_ids']}")
            return 1
        la, lb = logprobs(a[k]), logprobs(b[k])
        if len(la) != len(lb) or not la:
            print(f"{k}: {len(la)} vs {len(lb)} log-probabilities")
            return 1
        for x, y in zip(la, lb):
            d = abs(x - y) / max(1.0, abs(x))
            worst = max(worst, d)
            if d > rel:
                print(f"{k}: log-probability {x} vs {y} (relative {d:.2e} > {rel:g})")
                return 1
    print(f"same tokens; log-probabilities within {worst:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
