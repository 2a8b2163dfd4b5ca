#!/usr/bin/env python3
"""gen_rope_ref.py - write tests/cpu/rope_hf_ref.h from Hugging Face transformers.

For each rotary scaling type, builds the HF rotary embedding module from a
small config, runs its forward on position ids 0..seq_len-1 (so dynamic and
longrope update exactly as in generation), and records inv_freq, the
attention scaling, cos/sin at a few positions and one query vector rotated
by apply_rotary_pos_emb.  test_cpu_ops.c compares llm_cpu_rope_* with these
numbers.  Run: python3 tests/cpu/gen_rope_ref.py > tests/cpu/rope_hf_ref.h
(needs torch and transformers; the header is committed so tests do not).
"""
import math
import sys

import torch
import transformers
from transformers import LlamaConfig, Phi3Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

SCALING = {"default": 0, "linear": 1, "dynamic": 2, "yarn": 3, "llama3": 4, "longrope": 5}


def hexf(v):
    return float(v).hex() + "f" if math.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY")


def arr(vals):
    return "{" + ", ".join(hexf(float(v)) for v in vals) + "}"


def case(name, cfg, module, seq_len, positions, p):
    emb = module(cfg)
    x = torch.zeros(1, dtype=torch.float32)
    pid = torch.arange(seq_len)[None]
    cos, sin = emb(x, pid)
    inv = emb.inv_freq.float()
    half = inv.shape[0]
    hd = cfg.hidden_size // cfg.num_attention_heads
    q = torch.tensor([math.sin(0.37 * i + 0.1) * 2.0 for i in range(hd)], dtype=torch.float32)
    qpos = positions[-1]
    c, s = cos[0, qpos][None, None, None, :], sin[0, qpos][None, None, None, :]
    qr, _ = apply_rotary_pos_emb(q[None, None, None, :], q[None, None, None, :], c, s)
    out = []
    out.append("    {")
    out.append(f'        .name = "{name}", .head_dim = {hd}, .max_pos = {cfg.max_position_embeddings},')
    out.append(f"        .seq_len = {seq_len}, .scaling = {SCALING[p['type']]},")
    out.append(f"        .theta = {p['theta']!r}, .factor = {p.get('factor', 0.0)!r},")
    out.append(f"        .orig_max_pos = {p.get('orig', 0)}, .low_freq_factor = {p.get('low', 0.0)!r},")
    out.append(f"        .high_freq_factor = {p.get('high', 0.0)!r}, .beta_fast = {p.get('beta_fast', 0.0)!r},")
    out.append(f"        .beta_slow = {p.get('beta_slow', 0.0)!r}, .mscale = {p.get('mscale', 0.0)!r},")
    out.append(f"        .mscale_all_dim = {p.get('mscale_all_dim', 0.0)!r},")
    if p.get("no_truncate"):
        out.append("        .no_truncate = 1,")
    if "long" in p:
        out.append(f"        .long_factor = {arr(p['long'])},")
        out.append(f"        .short_factor = {arr(p['short'])},")
    out.append(f"        .attn_scaling = {hexf(float(emb.attention_scaling))},")
    out.append(f"        .inv_freq = {arr(inv.tolist())},")
    out.append(f"        .n_pos = {len(positions)}, .pos = {{{', '.join(map(str, positions))}}},")
    out.append("        .cos = {" + ", ".join(arr(cos[0, i, :half].tolist()) for i in positions) + "},")
    out.append("        .sin = {" + ", ".join(arr(sin[0, i, :half].tolist()) for i in positions) + "},")
    out.append(f"        .q = {arr(q.tolist())},")
    out.append(f"        .q_rot = {arr(qr.flatten().tolist())},")
    out.append("    },")
    return "\n".join(out)


def llama(hd=64, heads=4, theta=10000.0, max_pos=2048, scaling=None):
    return LlamaConfig(hidden_size=hd * heads, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=max_pos, rope_theta=theta, rope_scaling=scaling)


def main():
    cases = []
    cases.append(case("none", llama(), LlamaRotaryEmbedding, 2048, [0, 1, 7, 100, 1000, 2047],
                      {"type": "default", "theta": 10000.0}))
    cases.append(case("none-qwen", llama(hd=128, theta=1000000.0, max_pos=32768), LlamaRotaryEmbedding,
                      4096, [0, 3, 4095], {"type": "default", "theta": 1000000.0}))
    cases.append(case("linear", llama(scaling={"rope_type": "linear", "factor": 4.0}), LlamaRotaryEmbedding,
                      2048, [0, 5, 1999], {"type": "linear", "theta": 10000.0, "factor": 4.0}))
    dyn = {"rope_type": "dynamic", "factor": 2.0}
    cases.append(case("dynamic-short", llama(max_pos=256, scaling=dyn), LlamaRotaryEmbedding, 200,
                      [0, 150, 199], {"type": "dynamic", "theta": 10000.0, "factor": 2.0}))
    cases.append(case("dynamic-long", llama(max_pos=256, scaling=dyn), LlamaRotaryEmbedding, 600,
                      [0, 300, 599], {"type": "dynamic", "theta": 10000.0, "factor": 2.0}))
    cases.append(case("yarn", llama(scaling={"rope_type": "yarn", "factor": 4.0,
                                             "original_max_position_embeddings": 512}),
                      LlamaRotaryEmbedding, 2048, [0, 511, 2047],
                      {"type": "yarn", "theta": 10000.0, "factor": 4.0, "orig": 512}))
    cases.append(case("yarn-mscale", llama(scaling={"rope_type": "yarn", "factor": 8.0,
                                                    "original_max_position_embeddings": 256,
                                                    "beta_fast": 16.0, "beta_slow": 2.0,
                                                    "mscale": 1.0, "mscale_all_dim": 0.5}),
                      LlamaRotaryEmbedding, 2048, [3, 1500],
                      {"type": "yarn", "theta": 10000.0, "factor": 8.0, "orig": 256, "beta_fast": 16.0,
                       "beta_slow": 2.0, "mscale": 1.0, "mscale_all_dim": 0.5}))
    # GPT-OSS's: the ramp's ends left fractional (truncate false)
    cases.append(case("yarn-notrunc", llama(theta=150000.0, max_pos=131072,
                                            scaling={"rope_type": "yarn", "factor": 32.0,
                                                     "beta_fast": 32.0, "beta_slow": 1.0,
                                                     "truncate": False,
                                                     "original_max_position_embeddings": 4096}),
                      LlamaRotaryEmbedding, 4096, [0, 77, 4095],
                      {"type": "yarn", "theta": 150000.0, "factor": 32.0, "orig": 4096,
                       "beta_fast": 32.0, "beta_slow": 1.0, "no_truncate": True}))
    cases.append(case("llama3", llama(theta=500000.0, max_pos=131072,
                                      scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 8192}),
                      LlamaRotaryEmbedding, 16, [0, 1, 15],
                      {"type": "llama3", "theta": 500000.0, "factor": 8.0, "low": 1.0, "high": 4.0,
                       "orig": 8192}))
    long_f = [1.0 + 0.25 * i for i in range(32)]
    short_f = [1.0 + 0.01 * i for i in range(32)]
    for nm, sl, pos in (("longrope-short", 1000, [0, 999]), ("longrope-long", 3000, [0, 2999])):
        cfg = Phi3Config(hidden_size=256, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=8192, original_max_position_embeddings=1024,
                         rope_theta=10000.0,
                         rope_scaling={"type": "longrope", "long_factor": long_f, "short_factor": short_f})
        cases.append(case(nm, cfg, Phi3RotaryEmbedding, sl, pos,
                          {"type": "longrope", "theta": 10000.0, "orig": 1024, "long": long_f,
                           "short": short_f}))
    print("/* rope_hf_ref.h - generated by tests/cpu/gen_rope_ref.py from transformers "
          f"{transformers.__version__}, torch {torch.__version__}; do not edit. */")
    print("#define ROPE_REF_N %d" % len(cases))
    print("static const struct rope_ref rope_refs[ROPE_REF_N] = {")
    print("\n".join(cases))
    print("};")


if __name__ == "__main__":
    sys.exit(main())
