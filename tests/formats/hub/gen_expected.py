#!/usr/bin/env python3
"""gen_expected.py - writes expected.json next to every sample config: what
Hugging Face transformers makes of that folder's config.json,
generation_config.json and tokenizer_config.json.

The expectations are committed, so the comparator that checks llm against
them (tests/formats/hf_crosscheck.py) needs only the Python standard library;
this generator is the one place that needs torch and transformers, and is
run by hand whenever a folder is added or transformers changes:

    python3 -m venv /tmp/hfenv
    /tmp/hfenv/bin/pip install torch transformers
    /tmp/hfenv/bin/python tests/formats/hub/gen_expected.py            # every folder
    /tmp/hfenv/bin/python tests/formats/hub/gen_expected.py DIR [DIR...]

Every folder of tests/formats/hub/ (verbatim Hub files, see README.md there)
and of tests/formats/configs/ (older samples) gets one expected.json.

How each figure is obtained:
- the model is built from the config with AutoModelForCausalLM.from_config on
  the meta device (no memory, no weights); sizes, head dim, rotary dims, the
  rope attention factor, per-layer sliding windows and the parameter count
  are read from the instantiated modules, the rest from the config object
  transformers built (so its defaults and renamings apply);
- bos/eos/pad ids are those generate() uses: GenerationConfig.from_pretrained
  when generation_config.json exists, else GenerationConfig.from_model_config;
- tokenizer figures are read from tokenizer_config.json as transformers
  reads them (AddedToken dicts give their "content"); building a tokenizer
  would need vocabulary files that the corpus does not hold;
- a config transformers refuses gets "refused": the exception, first line.
  The pre-transformers Falcon namings (model_type RefinedWebModel and
  RefinedWeb) are renamed to transformers' falcon first, as transformers'
  own conversion does; expected.json says so under "normalized".
"""
import glob
import json
import os
import struct
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, GenerationConfig  # noqa: E402

transformers.logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = os.path.dirname(HERE)


def first_attr(obj, names, default=None):
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return default


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def normalize(cfg):
    """Renames the pre-transformers Falcon configs; returns a note or None."""
    mt = cfg.get("model_type")
    if mt not in ("RefinedWebModel", "RefinedWeb"):
        return None
    cfg["model_type"] = "falcon"
    cfg["num_attention_heads"] = cfg.pop("n_head")
    cfg["num_hidden_layers"] = cfg.pop("n_layer")
    if mt == "RefinedWeb":
        cfg["new_decoder_architecture"] = True
        if "n_head_kv" in cfg:
            cfg["num_kv_heads"] = cfg.pop("n_head_kv")
    return "model_type %s read as falcon" % mt


def build(d):
    """(model, normalized-note) or raises."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    note = normalize(cfg)
    cls = transformers.CONFIG_MAPPING[cfg["model_type"]]
    c = cls(**{k: v for k, v in cfg.items() if k != "model_type"})
    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(c), note
        except ValueError:
            # a multimodal class the causal-LM mapping leaves out (Qwen2.5-VL):
            # the class the config names
            arch = (cfg.get("architectures") or [None])[0]
            if not arch or not hasattr(transformers, arch):
                raise
            return getattr(transformers, arch)._from_config(c), note


def mlp_width(layer, hidden):
    """The MLP's inner width, from the first layer's weights."""
    mlp = first_attr(layer, ("mlp", "feed_forward", "ffn", "block_sparse_moe"))
    if mlp is None:
        return None
    for name, p in mlp.named_parameters():
        if "expert" in name or "gate." in name or p.dim() != 2:
            continue
        return max(p.shape) if min(p.shape) == hidden else None
    return None


def rope_info(base, c, att):
    """None where the model uses no rotary embedding (ALiBi and learned
    positions; Falcon builds a rotary module even with alibi=True)."""
    if getattr(c, "alibi", False):
        return None
    rot = getattr(base, "rotary_emb", None) or getattr(att, "rotary_emb", None)
    if (rot is None or not hasattr(rot, "inv_freq")) and getattr(att, "rotary_dim", None):
        # GPT-J: fixed sin/cos tables over the first rotary_dim dims, theta 10000
        return {"rot_dims": att.rotary_dim, "theta": 10000.0, "rope_type": "default",
                "attention_factor": 1.0, "parameters": {}}
    # one rotary module for every layer type (Gemma 3): the global layers'
    # tables are <type>_inv_freq; the sliding layers' base is reported apart
    per_type = rot is not None and not hasattr(rot, "inv_freq") and \
        hasattr(rot, "full_attention_inv_freq")
    if rot is None or not (hasattr(rot, "inv_freq") or per_type):
        return None
    rp_all = dict(getattr(c, "rope_parameters", None) or {})
    rp = rp_all
    if "full_attention" in rp and isinstance(rp["full_attention"], dict):
        rp = dict(rp["full_attention"])
    inv = rot.full_attention_inv_freq if per_type else rot.inv_freq
    scaling = getattr(rot, "full_attention_attention_scaling" if per_type else
                      "attention_scaling", 1.0)
    r = {
        "rot_dims": int(inv.shape[0]) * 2,
        "theta": float(rp.get("rope_theta", getattr(c, "rope_theta", 10000.0))),
        "rope_type": rp.get("rope_type", "default"),
        "attention_factor": float(scaling),
    }
    if per_type and hasattr(rot, "sliding_attention_inv_freq"):
        loc = rp_all["sliding_attention"]
        r["local"] = {
            "theta": float(loc["rope_theta"]),
            "rope_type": loc.get("rope_type", "default"),
            "layers": [i for i, t in enumerate(c.layer_types) if t == "sliding_attention"],
        }
    params = {}
    for k, v in rp.items():
        if k in ("rope_theta", "rope_type", "type"):
            continue
        if isinstance(v, list):
            v = [f32(x) for x in v]  # transformers builds a float32 tensor from them
        params[k] = v
    if r["rope_type"] != "default" and params.get("factor") is None \
            and params.get("original_max_position_embeddings"):
        params["factor"] = c.max_position_embeddings / params["original_max_position_embeddings"]
    r["parameters"] = params
    return r


def nope_layers(attns):
    """Layers whose attention skips the rotary: SmolLM3's modules say so
    (use_rope); Cohere2's rotate only where they slide.  None for models
    whose modules carry neither."""
    if any(hasattr(a, "use_rope") for a in attns):
        return [i for i, a in enumerate(attns) if not a.use_rope]
    if attns and type(attns[0]).__name__ == "Cohere2Attention":
        return [i for i, a in enumerate(attns) if a.sliding_window is None]
    if attns and type(attns[0]).__name__ == "Exaone4Attention":
        # rotary where the layer slides, or everywhere when there is no window
        return [i for i, a in enumerate(attns) if a.sliding_window is not None and not a.is_sliding]
    return None


def model_section(m):
    c = m.config
    base = m.base_model
    n_params = sum(p.numel() for p in m.parameters())
    lm = getattr(base, "language_model", None)
    if lm is not None:
        # a multimodal class (Gemma 3): what is converted is its language
        # model and lm_head; the vision tower and projector are left out
        c = c.get_text_config()
        base = lm
        n_params = sum(p.numel() for p in lm.parameters())
        if not getattr(m.config, "tie_word_embeddings", False):
            n_params += sum(p.numel() for p in m.lm_head.parameters())
    layers = first_attr(base, ("layers", "h", "blocks"))
    if layers is None and hasattr(base, "decoder"):
        layers = first_attr(base.decoder, ("layers",))
    att = first_attr(layers[0], ("self_attn", "attn", "attention", "self_attention"))
    heads = c.num_attention_heads
    groups = getattr(att, "num_key_value_groups", None)
    kv = heads // groups if groups else first_attr(
        att, ("num_key_value_heads", "num_kv_heads"), first_attr(
            c, ("num_key_value_heads", "num_kv_heads"), heads))
    hd = first_attr(att, ("qk_head_dim", "head_dim", "head_size"))  # MLA: nope + rope
    if hd is None:
        hd = c.hidden_size // heads
    # per-layer windows where the attention modules carry them (None where
    # they do not, and the model decides elsewhere)
    attns = [first_attr(l, ("self_attn",)) for l in layers]
    win = None
    if any(hasattr(a, "sliding_window") for a in attns):
        win = [i for i, a in enumerate(attns) if getattr(a, "sliding_window", None)]
    if attns and type(attns[0]).__name__ == "Exaone4Attention":
        # every module keeps the config's window; only the sliding ones use it
        win = [i for i, a in enumerate(attns) if a.is_sliding and a.sliding_window]
    moe = None
    n_exp = first_attr(c, ("num_local_experts", "num_experts", "n_routed_experts"))
    if n_exp:
        moe = {
            "n_experts": n_exp,
            "experts_per_tok": first_attr(c, ("num_experts_per_tok", "moe_top_k")),
            "expert_intermediate_size": first_attr(
                c, ("moe_intermediate_size", "intermediate_size")),
        }
    # tied as the model built from the config is (a multimodal config's flag
    # may sit at the top while the text config's says nothing)
    emb_in, emb_out = m.get_input_embeddings(), m.get_output_embeddings()
    if emb_in is not None and emb_out is not None:
        tied = emb_out.weight is emb_in.weight
    else:
        tied = bool(getattr(c, "tie_word_embeddings", False))
    out = {
        "architecture": type(m).__name__,
        "model_type": c.model_type,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_layers": c.num_hidden_layers,
        "num_attention_heads": heads,
        "num_kv_heads": kv,
        "head_dim": hd,
        "intermediate_size": first_attr(c, ("intermediate_size", "ffn_dim", "n_inner",
                                            "ffn_hidden_size")) or mlp_width(
                                                layers[0], c.hidden_size),
        "moe": moe,
        "max_position_embeddings": first_attr(c, ("max_position_embeddings", "n_positions",
                                                  "max_seq_len")),
        "norm_eps": first_attr(c, ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon",
                                   "norm_eps", "norm_epsilon")),
        "hidden_act": first_attr(c, ("hidden_act", "hidden_activation", "activation_function")),
        "tie_word_embeddings": tied,
        "rope": rope_info(base, c, att),
        "sliding_window": attns[win[0]].sliding_window if win else None,
        "window_layers": win,
        "nope_layers": nope_layers(attns),
        "config_sliding_window": getattr(c, "sliding_window", None),
        "layer_types": getattr(c, "layer_types", None),
        "n_params": n_params,
        "quantization": quantization(c),
    }
    return out


def quantization(c):
    """The quantization_config as transformers holds it (the model itself is
    built unquantized: the parameter count is that of the full-precision
    model)."""
    q = getattr(c, "quantization_config", None)
    if q is None:
        return None
    return q if isinstance(q, dict) else q.to_dict()


def ids(x):
    return [] if x is None else ([x] if isinstance(x, int) else list(x))


def generation_section(d, m):
    if m is not None:
        gc = GenerationConfig.from_model_config(m.config)
    if os.path.exists(os.path.join(d, "generation_config.json")):
        gc = GenerationConfig.from_pretrained(d)
    elif m is None:
        return None
    return {
        "bos_token_id": gc.bos_token_id,
        "eos_token_ids": ids(gc.eos_token_id),
        "pad_token_id": gc.pad_token_id,
    }


def token_text(t):
    if isinstance(t, dict):
        return t.get("content")
    return t


def tokenizer_section(d):
    p = os.path.join(d, "tokenizer_config.json")
    if not os.path.exists(p):
        return None
    t = json.load(open(p))
    return {
        "tokenizer_class": t.get("tokenizer_class"),
        "model_max_length": t.get("model_max_length"),
        "bos_token": token_text(t.get("bos_token")),
        "eos_token": token_text(t.get("eos_token")),
        "pad_token": token_text(t.get("pad_token")),
        "unk_token": token_text(t.get("unk_token")),
        "add_bos_token": t.get("add_bos_token"),
        "add_eos_token": t.get("add_eos_token"),
        "chat_template": "chat_template" in t and t["chat_template"] is not None,
    }


def expected(d):
    e = {
        "generator": "tests/formats/hub/gen_expected.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    m = None
    try:
        m, note = build(d)
        if note:
            e["normalized"] = note
        e["model"] = model_section(m)
    except Exception as ex:  # transformers itself refuses some configs
        e["refused"] = ("%s: %s" % (type(ex).__name__, ex)).splitlines()[0][:300]
    try:
        e["generation"] = generation_section(d, m)
    except Exception as ex:
        e["generation"] = {"refused": ("%s: %s" % (type(ex).__name__, ex)).splitlines()[0]}
    e["tokenizer"] = tokenizer_section(d)
    return e


def main():
    dirs = sys.argv[1:] or sorted(
        glob.glob(os.path.join(FORMATS, "hub", "*", "config.json"))
        + glob.glob(os.path.join(FORMATS, "configs", "*", "config.json")))
    for d in dirs:
        d = os.path.dirname(d) if d.endswith("config.json") else d
        e = expected(d)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(e, f, indent=1, sort_keys=True)
            f.write("\n")
        print("%-40s %s" % (os.path.basename(d), e.get("refused") or e["model"]["architecture"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
