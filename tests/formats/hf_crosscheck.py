#!/usr/bin/env python3
"""hf_crosscheck.py - compares llm's reading of every sample config.json in
tests/formats/configs with what Hugging Face transformers makes of it.

For each folder it prints llm's description (`test-hfconfig --dump DIR`),
builds the same model with transformers on the meta device (no memory, no
weights) and compares: parameter count, sizes, head dim, rotary dims, rope
type and parameters (incl. the attention factor transformers derives for
yarn/longrope), per-layer sliding windows, norm epsilon, tied embeddings and
the bos/eos ids generate() would use.  Exits 77 (skipped) when torch or
transformers is not installed.

    python3 tests/formats/hf_crosscheck.py BUILD/tests/formats/test-hfconfig [DIR...]
"""
import glob
import json
import math
import os
import struct
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig
except ImportError as e:  # not every machine has them
    print("skipped: %s" % e)
    sys.exit(77)
transformers.logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))


def hf_model(d):
    """The transformers model for folder d, or (None, reason)."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    if cfg.get("model_type") == "RefinedWebModel":  # the pre-transformers Falcon-RW naming
        cfg["model_type"] = "falcon"
        cfg["num_attention_heads"] = cfg.pop("n_head")
        cfg["num_hidden_layers"] = cfg.pop("n_layer")
    try:
        cls = transformers.CONFIG_MAPPING[cfg["model_type"]]
        c = cls(**{k: v for k, v in cfg.items() if k != "model_type"})
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(c), None
    except Exception as e:  # transformers itself refuses some old configs
        return None, repr(e)[:160]


def first_attr(obj, names):
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def yarn_attention(r):
    def mscale(s, m=1.0):
        return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0
    if r["mscale"] and r["mscale_all_dim"]:
        return mscale(r["factor"], r["mscale"]) / mscale(r["factor"], r["mscale_all_dim"])
    return mscale(r["factor"])


def compare(ours, d):
    m, why = hf_model(d)
    if m is None:
        return None, why
    bad = []

    def eq(what, a, b, tol=0.0):
        if isinstance(a, float) or isinstance(b, float):
            ok = abs(a - b) <= tol + 1e-12 * abs(b)
        else:
            ok = a == b
        if not ok:
            bad.append("%s: llm %r, transformers %r" % (what, a, b))

    c = m.config
    eq("parameters", ours["n_params"], sum(p.numel() for p in m.parameters()))
    eq("n_layers", ours["n_layers"], c.num_hidden_layers)
    eq("vocab_size", ours["vocab_size"], c.vocab_size)
    eq("hidden", ours["hidden"], c.hidden_size)
    eq("n_heads", ours["n_heads"], c.num_attention_heads)
    base = m.base_model
    layers = first_attr(base, ("layers", "h", "blocks"))
    att = first_attr(layers[0], ("self_attn", "attn", "attention", "self_attention"))
    hd = first_attr(att, ("head_dim", "head_size"))
    if hd is not None:
        eq("head_dim", ours["head_dim"], hd)
    groups = getattr(att, "num_key_value_groups", None)
    if groups:
        eq("n_kv_heads", ours["n_kv_heads"], c.num_attention_heads // groups)
    rot = getattr(base, "rotary_emb", None) or getattr(att, "rotary_emb", None)
    r = ours["rope"]
    if rot is not None and ours["pos"] == "rope":
        eq("rope.rot_dims", r["rot_dims"], rot.inv_freq.shape[0] * 2)
        rp = c.rope_parameters
        eq("rope.theta", r["theta"], float(rp["rope_theta"]))
        rt = rp.get("rope_type", "default")
        eq("rope.scaling", r["scaling"], {"default": "none", "su": "longrope"}.get(rt, rt))
        if rt != "default":
            f = rp.get("factor")
            if f is None:
                f = c.max_position_embeddings / rp["original_max_position_embeddings"]
            eq("rope.factor", r["factor"], float(f))
            if rt in ("llama3", "yarn", "longrope"):
                eq("rope.orig_max_pos", r["orig_max_pos"], rp["original_max_position_embeddings"])
            if rt == "llama3":
                eq("rope.low_freq_factor", r["low_freq_factor"], float(rp["low_freq_factor"]))
                eq("rope.high_freq_factor", r["high_freq_factor"], float(rp["high_freq_factor"]))
            if rt == "yarn":
                eq("rope.beta_fast", r["beta_fast"], float(rp.get("beta_fast") or 32))
                eq("rope.beta_slow", r["beta_slow"], float(rp.get("beta_slow") or 1))
            if rt in ("yarn", "longrope"):
                a = r["attn_factor"]
                if a == 0:  # ours: derive it, as transformers does
                    if rt == "yarn":
                        a = yarn_attention(r)
                    else:
                        a = 1.0 if r["factor"] <= 1 else math.sqrt(
                            1 + math.log(r["factor"]) / math.log(r["orig_max_pos"]))
                eq("rope attention factor", a, float(rot.attention_scaling), 1e-9)
            if rt == "longrope":  # float32, as transformers builds its tensor from them
                for k in ("long_factor", "short_factor"):
                    eq("rope." + k, r[k], [f32(x) for x in rp[k]])
    if any(hasattr(first_attr(l, ("self_attn",)), "sliding_window") for l in layers):
        win = [i for i, l in enumerate(layers) if getattr(l.self_attn, "sliding_window", None)]
        eq("window_layers", ours["window_layers"], win)
        if win:
            eq("sliding_window", ours["sliding_window"], layers[win[0]].self_attn.sliding_window)
    eps = first_attr(c, ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"))
    if eps is not None:
        eq("norm_eps", ours["norm_eps"], eps)
    eq("tied_embeddings", ours["tied_embeddings"], bool(getattr(c, "tie_word_embeddings", False)))
    gc = GenerationConfig.from_model_config(c)
    if os.path.exists(os.path.join(d, "generation_config.json")):
        gc = GenerationConfig.from_pretrained(d)
    eos = gc.eos_token_id
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    eq("eos_ids", ours["eos_ids"], [e for e in eos if e >= 0])
    bos = gc.bos_token_id
    eq("bos_id", ours["bos_id"], -1 if bos is None or bos < 0 else bos)
    return bad, None


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    dirs = sys.argv[2:] or sorted(glob.glob(os.path.join(HERE, "configs", "*")))
    out = subprocess.run([sys.argv[1], "--dump"] + dirs, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr)
        return 1
    failed = 0
    for line in out.stdout.splitlines():
        ours = json.loads(line)
        name = os.path.basename(ours["dir"].rstrip("/"))
        bad, why = compare(ours, ours["dir"])
        if bad is None:
            print("%-24s skipped: transformers refuses it (%s)" % (name, why))
        elif bad:
            failed += 1
            print("%-24s MISMATCH\n    %s" % (name, "\n    ".join(bad)))
        else:
            print("%-24s same as transformers (%d parameters)" % (name, ours["n_params"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
