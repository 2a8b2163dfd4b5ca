#!/usr/bin/env python3
"""targets.py DIR - the table of `run.sh targets`: each llm-bench JSON in DIR
against the published figure it answers (TensorRT-LLM's H200 figures, or the
issue's own bound), with the device, the spread and the repetitions."""
import json
import os
import sys

# name: (what, bound, kind, source); kind "tok" compares output tok/s, "copy"
# the fraction of the copy rate over the bytes a token reads
TARGETS = {
    "l2-7b-fp8": ("Llama-2-7B fp8 + fp8 KV 128/128", 19549, "tok", "TensorRT-LLM v0.13"),
    "l3-8b-fp8": ("Llama-3.1-8B fp8 128/128", 29526, "tok", "TensorRT-LLM v0.17"),
    "l3-8b-2k": ("Llama-3.1-8B fp8 2048/2048", 11969, "tok", "TensorRT-LLM v0.17"),
    "b1-int4": ("Llama-2-7B int4-awq batch 1", 900, "tok", "the bound; llama.cpp Q4_0 248"),
    "b1-bf16": ("Llama-2-7B bf16 batch 1", 0.90, "copy", "the bound"),
    "l3-70b-fp8": ("Llama-3.1-70B fp8 + fp8 KV 128/128", 4021, "tok", "TensorRT-LLM v0.17"),
    "l3-70b-fp8-2x": ("the same, 3,072 requests, 1,536 at once", 4021, "tok",
                      "TensorRT-LLM v0.17"),
    "falcon180": ("Falcon-180B w4a8-awq 128/128", 800, "tok", "TensorRT-LLM v0.7a"),
    "falcon180-int4": ("Falcon-180B int4-awq 128/128", 800, "tok", "TensorRT-LLM v0.7a (W4A8)"),
}


def row(name, path):
    what, bound, kind, src = TARGETS.get(name, (name, None, "tok", "-"))
    try:
        with open(path) as f:
            d = json.load(f)
        fig = d["results"][0]["figures"]
        tok = fig["output_tokens_per_s"]
        frac = fig.get("mem_bw_fraction", {}).get("mean")
        ffrac = fig.get("flops_fraction", {}).get("mean")
        dev = d.get("env", {}).get("gpu", {}).get("name", "?")
        commit = d.get("env", {}).get("build", {}).get("commit", "?")
    except (OSError, ValueError, KeyError, IndexError) as e:
        return f"| {what} | - | no result ({type(e).__name__}) | {bound} ({src}) | - |"
    ours = f"{tok['mean']:,.1f} ± {tok['stddev']:,.1f} (n={tok['n']})"
    if name.startswith("b1") and frac is not None:  # one row: bound by the bytes
        ours += f", {100 * frac:.1f}% of copy"
    elif ffrac is not None:  # many rows: by the products
        ours += f", {100 * ffrac:.1f}% of the GEMM rate"
    if bound is None:
        status = "-"
    elif kind == "copy" and frac is None:
        status = f"missed (no bandwidth figure; {100 * bound:.0f}% of copy)"
    else:  # met only when the mean less its spread clears the bound
        v, sd = ((frac, fig["mem_bw_fraction"].get("stddev", 0.0)) if kind == "copy" else
                 (tok["mean"], tok["stddev"]))
        status = ("met" if v - sd > bound else
                  "within the spread" if v + sd > bound else "missed")
        status += (f" ({100 * bound:.0f}% of copy)" if kind == "copy" else
                   f" ({tok['mean'] / bound:.1%})")
    if tok["n"] < 3:
        status += ", fewer than 3 repetitions"
    shown = (f"{bound:,}" if isinstance(bound, int)
             else f"{bound:.0%} of copy" if bound is not None else "-")
    return f"| {what} | {dev}, {commit} | {ours} | {shown} ({src}) | {status} |"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: targets.py DIR")
    top = sys.argv[1]
    names = [n for n in TARGETS if os.path.exists(os.path.join(top, n + ".json"))]
    names += sorted(f[:-5] for f in os.listdir(top)
                    if f.endswith(".json") and f[:-5] not in TARGETS)
    print("| figure | device, commit | ours | published / bound | status |")
    print("|---|---|---:|---:|---|")
    for n in names:
        print(row(n, os.path.join(top, n + ".json")))


if __name__ == "__main__":
    main()
