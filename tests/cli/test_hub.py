#!/usr/bin/env python3
"""test_hub.py - published checkpoints' metadata through the tools.

For every folder of tests/formats/hub/ (verbatim config.json,
generation_config.json and tokenizer_config.json of real checkpoints):

1. the config, shrunk to a tiny model of the same architecture and
   switches (2 layers, 4 heads, hidden 64: every size field rewritten,
   everything else kept as published), converts with
   `llm-convert --random`;
2. `llm-run -q --device cpu` either generates (the CPU backend runs the
   model's features) or refuses with one line naming the missing feature,
   exit 1, nothing on standard output (and llm-bench, for one of them); `llm-build --arch sm_90` likewise
   builds an engine or refuses by feature;
3. the Llama family (llama, mistral, qwen2, phi3) must run.

Then a tiny Llama-2 fixture's tokenizer_config.json is replaced by the one
Llama-2-7b-hf publishes (model_max_length beyond 64 bits, AddedToken
objects, null fields): it converts and generates.

    python3 tests/cli/test_hub.py            (LLM_BUILDDIR, LLM_SRCDIR set)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

B = os.environ["LLM_BUILDDIR"]
S = os.environ["LLM_SRCDIR"]
HUB = os.path.join(S, "tests", "formats", "hub")
MUST_RUN = {"llama", "mistral", "qwen2", "phi3"}

SIZE = {  # field -> tiny value
    "hidden_size": 64, "n_embd": 64, "n_embed": 64, "d_model": 64,
    "num_hidden_layers": 2, "n_layer": 2, "n_layers": 2, "num_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "num_heads": 4,
    "intermediate_size": 128, "n_inner": 128, "ffn_hidden_size": 128, "ffn_dim": 128,
    "moe_intermediate_size": 32, "head_dim": 16, "rotary_dim": 8,
    "num_local_experts": 4, "num_experts": 4,
}
KV = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "kv_n_heads")


def shrink(cfg):
    """The config with every size field made tiny; the rest as published."""
    c = json.loads(json.dumps(cfg))
    heads = next((c[k] for k in ("num_attention_heads", "n_head", "n_heads") if k in c), 4)
    for k, v in SIZE.items():
        if isinstance(c.get(k), int):
            c[k] = v
    for obj in (c, c.get("attn_config") or {}):
        for k in KV:
            if isinstance(obj.get(k), int) and heads:
                obj[k] = max(1, 4 * obj[k] // heads) if obj[k] < heads else 4
    if "num_experts_per_tok" in c:
        c["num_experts_per_tok"] = min(c["num_experts_per_tok"], 2)
    for rk in ("rope_scaling", "rope_parameters"):  # longrope lists: one per rotary pair
        r = c.get(rk)
        if isinstance(r, dict):
            for f in ("long_factor", "short_factor"):
                if isinstance(r.get(f), list):
                    r[f] = r[f][:8]
    return c


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def refused_cleanly(p, what):
    err = p.stderr.strip()
    return (p.returncode == 1 and not p.stdout and err.count("\n") == 0 and
            "cannot run this" in err and "it needs" in err), err


def main():
    tmp = tempfile.mkdtemp(prefix="test-hub-")
    fails = 0
    ran = set()
    bench_checked = False
    req = os.path.join(tmp, "req.jsonl")
    with open(req, "w") as f:
        f.write('{"id": "a", "input_ids": [1, 2, 3], "max_tokens": 3, "min_tokens": 3}\n')
    for name in sorted(os.listdir(HUB)):
        d = os.path.join(HUB, name)
        if not os.path.isfile(os.path.join(d, "config.json")):
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        if cfg.get("quantization_config"):
            print("%-48s pre-quantized: converting it is the importers' job" % name)
            continue
        c = os.path.join(tmp, "config.json")
        json.dump(shrink(cfg), open(c, "w"))
        m = os.path.join(tmp, "m.llm")
        p = run([B + "/cmd/llm-convert", "-q", "--random", c, "--dtype", "bf16", "-o", m])
        if p.returncode:
            print("FAIL %s: llm-convert --random: %s" % (name, p.stderr.strip()))
            fails += 1
            continue
        arch = json.loads(run([B + "/cmd/llm-info", "--json", m]).stdout)["metadata"]["model"]["arch"]
        p = run([B + "/cmd/llm-run", "-q", "--device", "cpu", m, req])
        if p.returncode == 0:
            out = [json.loads(l) for l in p.stdout.splitlines()]
            ok = len(out) == 1 and len(out[0].get("output_ids", [])) == 3
            verdict = "runs on the cpu" if ok else "FAIL bad output: " + p.stdout[:200]
            fails += not ok
            ran.add(arch)
        else:
            ok, err = refused_cleanly(p, "llm-run")
            verdict = ("refused: " + err.split(": ", 1)[1]) if ok else "FAIL llm-run: " + err
            fails += not ok or arch in MUST_RUN
            if ok and not bench_checked:  # llm-bench refuses the same way, before any run
                bench_checked = True
                p = run([B + "/cmd/llm-bench", "throughput", "--device", "cpu", "--num-requests",
                         "1", "--input-len", "4", "--output-len", "2", m])
                ok, err = refused_cleanly(p, "llm-bench")
                verdict += "; llm-bench refused" if ok else "; FAIL llm-bench: " + err
                fails += not ok
        e = os.path.join(tmp, "m.engine")
        if os.path.exists(e):
            os.remove(e)
        p = run([B + "/cmd/llm-build", "-q", "--arch", "sm_90", m, "-o", e])
        if p.returncode == 0:
            verdict += "; engine built"
        else:
            ok, err = refused_cleanly(p, "llm-build")
            verdict += "; llm-build refused" if ok else "; FAIL llm-build: " + err
            fails += not ok
            if os.path.exists(e):
                verdict += " but left its output"
                fails += 1
        print("%-48s %-11s %s" % (name, arch, verdict))
    for a in MUST_RUN:
        if a not in ran:
            print("FAIL: no %s checkpoint ran" % a)
            fails += 1

    # a published tokenizer_config.json in a real conversion
    fx = os.path.join(tmp, "llama2")
    shutil.copytree(os.path.join(S, "tests", "fixtures", "llama2-f32"), fx)
    shutil.copy(os.path.join(HUB, "meta-llama--Llama-2-7b-hf", "tokenizer_config.json"), fx)
    m = os.path.join(tmp, "l2.llm")
    p = run([B + "/cmd/llm-convert", "-q", fx, "-o", m])
    q = run([B + "/cmd/llm-run", "--device", "cpu", m, "-"], input='{"id": "t", "prompt": '
            '"def f(x):", "max_tokens": 4, "min_tokens": 4}\n') if p.returncode == 0 else p
    if q.returncode or len(json.loads(q.stdout)["output_ids"]) != 4:
        print("FAIL: Llama-2-7b-hf's tokenizer_config.json: %s" % (q.stderr.strip() or q.stdout))
        fails += 1
    else:
        print("%-48s converts and generates with a published tokenizer_config.json" % "llama2-f32")
    shutil.rmtree(tmp)
    print("%d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
