#!/usr/bin/env python3
"""make_bad.py - writes the bad-input corpus under tests/formats/bad/ and the
valid checkpoint it is derived from under tests/formats/good/tiny-llama/.

Every case is a checkpoint folder (config.json of a tiny Llama plus
safetensors files) that is correct except for one defect, so that any tool
taking a checkpoint folder can be run on it and must fail with the error
listed in bad/cases.tsv: case, error code name, a substring of the message.
Only the standard library is used; the output is deterministic, so running
this again must leave `git status` clean.

    python3 tests/formats/make_bad.py          # rewrite the corpus
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "bad")
GOOD = os.path.join(HERE, "good", "tiny-llama")

# A one-layer Llama with grouped-query attention: hidden 8, 2 heads of 4,
# 1 KV head, MLP 16, vocabulary 16.
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 16,
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "bos_token_id": 1,
    "eos_token_id": 2,
}

P = "model.layers.0."
SHAPES = [
    ("model.embed_tokens.weight", [16, 8]),
    (P + "input_layernorm.weight", [8]),
    (P + "self_attn.q_proj.weight", [8, 8]),
    (P + "self_attn.k_proj.weight", [4, 8]),
    (P + "self_attn.v_proj.weight", [4, 8]),
    (P + "self_attn.o_proj.weight", [8, 8]),
    (P + "post_attention_layernorm.weight", [8]),
    (P + "mlp.gate_proj.weight", [16, 8]),
    (P + "mlp.up_proj.weight", [16, 8]),
    (P + "mlp.down_proj.weight", [8, 16]),
    ("model.norm.weight", [8]),
    ("lm_head.weight", [16, 8]),
]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def f16_data(seed, n):
    """n small deterministic float16 values."""
    out = bytearray()
    x = seed * 2654435761 % 2**32
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        out += struct.pack("<e", ((x >> 8) % 2001 - 1000) / 1000.0)
    return bytes(out)


def tensors(dtype_of=None):
    """[(name, dtype, shape, bytes)] for the tiny model."""
    res = []
    for i, (name, shape) in enumerate(SHAPES):
        dt = (dtype_of or {}).get(name, "F16")
        n = numel(shape)
        data = f16_data(i + 1, n)
        if dt == "F32":
            data = b"".join(struct.pack("<f", struct.unpack("<e", data[2 * k:2 * k + 2])[0])
                            for k in range(n))
        res.append((name, dt, shape, data))
    return res


def header_of(ts, metadata=None):
    """The header dict and data section for tensors in the given order."""
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    for name, dt, shape, data in ts:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    return hdr, b"".join(t[3] for t in ts)


def pack(header_text, data, hlen=None):
    """Header text padded with spaces to 8 bytes, as HF writes it."""
    raw = header_text.encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    n = len(raw) if hlen is None else hlen
    return struct.pack("<Q", n) + raw + data


def st_file(ts, metadata=None):
    hdr, data = header_of(ts, metadata)
    return pack(json.dumps(hdr, separators=(",", ":")), data)


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)


def config_text(cfg=None):
    return json.dumps(cfg if cfg is not None else CONFIG, indent=2) + "\n"


def good_file():
    return st_file(tensors(), {"format": "pt"})


def shards(split=6):
    """Two shards and an index for the tiny model."""
    ts = tensors()
    a, b = ts[:split], ts[split:]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {}
    for t in a:
        wm[t[0]] = names[0]
    for t in b:
        wm[t[0]] = names[1]
    total = sum(len(t[3]) for t in ts)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}
    return names, [st_file(a, {"format": "pt"}), st_file(b, {"format": "pt"})], index


CASES = []


def case(name, code, substring):
    def deco(fn):
        CASES.append((name, code, substring, fn))
        return fn
    return deco


# ---- safetensors file structure --------------------------------------------

@case("empty-file", "LLM_ETRUNC", "empty file")
def _(d):
    write(d + "/model.safetensors", b"")


@case("short-file", "LLM_ETRUNC", "too short for the 8-byte header length")
def _(d):
    write(d + "/model.safetensors", b"\x10\x00\x00")


@case("truncated-file", "LLM_ETRUNC", "exceeds the data section")
def _(d):
    b = good_file()
    write(d + "/model.safetensors", b[:len(b) - 700])


@case("header-past-end", "LLM_ETRUNC", "runs past the end of the file")
def _(d):
    b = good_file()
    write(d + "/model.safetensors", struct.pack("<Q", len(b) + 100) + b[8:])


@case("header-huge", "LLM_EFORMAT", "exceeds the limit of 100000000 bytes")
def _(d):
    b = good_file()
    write(d + "/model.safetensors", struct.pack("<Q", 1 << 40) + b[8:])


@case("header-not-object", "LLM_EFORMAT", "header does not start with a JSON object")
def _(d):
    write(d + "/model.safetensors", pack("[1, 2, 3]", b""))


@case("bad-json", "LLM_EFORMAT", "header is not valid JSON")
def _(d):
    hdr, data = header_of(tensors())
    text = json.dumps(hdr, separators=(",", ":"))
    write(d + "/model.safetensors", pack(text[:-1] + ",}", data))


@case("duplicate-key", "LLM_EFORMAT", "header has the key \"model.norm.weight\" twice")
def _(d):
    hdr, data = header_of(tensors())
    text = json.dumps(hdr, separators=(",", ":"))
    extra = '"model.norm.weight":' + json.dumps(hdr["model.norm.weight"], separators=(",", ":"))
    write(d + "/model.safetensors", pack(text[:-1] + "," + extra + "}", data))


@case("metadata-not-strings", "LLM_EFORMAT", "__metadata__ value of 'step' is not a string")
def _(d):
    write(d + "/model.safetensors", st_file(tensors(), {"format": "pt", "step": 3}))


# ---- one tensor entry ----------------------------------------------------------

def patched(d, name, fn, metadata=None):
    hdr, data = header_of(tensors(), metadata)
    fn(hdr[name])
    write(d + "/model.safetensors", pack(json.dumps(hdr, separators=(",", ":")), data))


@case("unknown-dtype", "LLM_EUNSUPPORTED", "tensor 'model.norm.weight' has unknown dtype 'Q7'")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.update(dtype="Q7"))


@case("missing-dtype", "LLM_EFORMAT", "tensor 'model.norm.weight' has no dtype")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.pop("dtype"))


@case("shape-size-mismatch", "LLM_ESHAPE",
      "tensor 'model.layers.0.self_attn.q_proj.weight': shape [8, 9] of F16 needs 144 bytes "
      "but data_offsets")
def _(d):
    patched(d, P + "self_attn.q_proj.weight", lambda e: e.update(shape=[8, 9]))


@case("negative-dim", "LLM_EFORMAT", "tensor 'model.norm.weight': shape[0] is negative (-8)")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.update(shape=[-8]))


@case("shape-overflow", "LLM_ERANGE", "size of shape [4611686018427387904, 8] of F16 overflows")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.update(shape=[1 << 62, 8]))


@case("offsets-not-pair", "LLM_EFORMAT", "tensor 'model.norm.weight': data_offsets is not a pair")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.update(data_offsets=[0]))


@case("offsets-reversed", "LLM_EFORMAT", "end before they begin")
def _(d):
    patched(d, "model.norm.weight", lambda e: e.update(
        data_offsets=[e["data_offsets"][1], e["data_offsets"][0]]))


@case("offsets-past-end", "LLM_ETRUNC",
      "tensor 'lm_head.weight' data [1712, 1968) exceeds the data section (1712 bytes)")
def _(d):
    # the header lies: lm_head is said to end 256 bytes past the real data
    hdr, data = header_of(tensors())
    b, e = hdr["lm_head.weight"]["data_offsets"]
    hdr["lm_head.weight"]["data_offsets"] = [b + 256, e + 256]
    write(d + "/model.safetensors", pack(json.dumps(hdr, separators=(",", ":")), data))


@case("overlap", "LLM_EFORMAT",
      "tensors 'model.layers.0.self_attn.k_proj.weight' [400, 464) and "
      "'model.layers.0.self_attn.v_proj.weight' [432, 496) overlap")
def _(d):
    hdr, data = header_of(tensors())
    v = hdr[P + "self_attn.v_proj.weight"]["data_offsets"]
    hdr[P + "self_attn.v_proj.weight"]["data_offsets"] = [v[0] - 32, v[1] - 32]
    write(d + "/model.safetensors", pack(json.dumps(hdr, separators=(",", ":")), data))


# ---- sharded checkpoints ---------------------------------------------------------

def write_shards(d, names, files, index):
    for n, b in zip(names, files):
        if b is not None:
            write(d + "/" + n, b)
    write(d + "/model.safetensors.index.json", json.dumps(index, indent=2) + "\n")


@case("missing-shard", "LLM_ENOTFOUND",
      "model-00002-of-00002.safetensors' named by the index not found")
def _(d):
    names, files, index = shards()
    files[1] = None
    write_shards(d, names, files, index)


@case("index-tensor-not-in-shard", "LLM_ENOTFOUND",
      "tensor 'model.layers.0.extra.weight' named by")
def _(d):
    names, files, index = shards()
    index["weight_map"][P + "extra.weight"] = names[0]
    write_shards(d, names, files, index)


@case("index-wrong-shard", "LLM_EFORMAT", "as the index says")
def _(d):
    names, files, index = shards()
    index["weight_map"]["model.norm.weight"] = names[0]
    write_shards(d, names, files, index)


@case("tensor-in-two-shards", "LLM_EFORMAT", "tensor 'model.norm.weight' is also in")
def _(d):
    names, files, index = shards()
    ts = tensors()
    files[0] = st_file(ts[:6] + [t for t in ts if t[0] == "model.norm.weight"])
    write_shards(d, names, files, index)


@case("index-bad-json", "LLM_EFORMAT", "index is not valid JSON")
def _(d):
    names, files, index = shards()
    write_shards(d, names, files, index)
    write(d + "/model.safetensors.index.json", '{"weight_map": {"a": "b",}}\n')


@case("index-escapes-folder", "LLM_EFORMAT", "is not a file in the index's folder")
def _(d):
    names, files, index = shards()
    index["weight_map"]["model.norm.weight"] = "../" + names[1]
    write_shards(d, names, files, index)


@case("no-safetensors", "LLM_ENOTFOUND", "no .safetensors file in the folder")
def _(d):
    os.makedirs(d, exist_ok=True)


# ---- config.json -------------------------------------------------------------------

def with_config(d, cfg_text):
    write(d + "/config.json", cfg_text)
    write(d + "/model.safetensors", good_file())


@case("unsupported-arch", "LLM_EUNSUPPORTED", "config.json': unsupported architecture "
      "'FooForCausalLM'")
def _(d):
    cfg = dict(CONFIG, architectures=["FooForCausalLM"])
    with_config(d, config_text(cfg))


@case("config-missing-field", "LLM_EFORMAT", "config.json': missing field 'num_attention_heads'")
def _(d):
    cfg = dict(CONFIG)
    del cfg["num_attention_heads"]
    with_config(d, config_text(cfg))


@case("config-wrong-type", "LLM_EFORMAT", "field 'hidden_size' must be an integer, found a string")
def _(d):
    with_config(d, config_text(dict(CONFIG, hidden_size="8")))


@case("config-bad-json", "LLM_EFORMAT", "config.json': not valid JSON")
def _(d):
    with_config(d, config_text()[:-3] + "\n")


@case("config-bad-rope", "LLM_EUNSUPPORTED", "unsupported rope_scaling.type 'mrope'")
def _(d):
    with_config(d, config_text(dict(CONFIG, rope_scaling={"type": "mrope", "factor": 2.0})))


@case("config-heads-mismatch", "LLM_EFORMAT",
      "num_key_value_heads 3 does not divide the 2 attention heads")
def _(d):
    with_config(d, config_text(dict(CONFIG, num_key_value_heads=3)))


@case("config-prequantized", "LLM_EUNSUPPORTED",
      "pre-quantized checkpoint (GPTQ 4 bits, group 0, format gptq) not imported: 4-bit GPTQ "
      "needs a positive group_size")
def _(d):
    with_config(d, config_text(dict(CONFIG, quantization_config={"quant_method": "gptq",
                                                                 "bits": 4})))


@case("no-config", "LLM_ENOTFOUND", "config.json': no such file")
def _(d):
    write(d + "/model.safetensors", good_file())


# ---- the checkpoint against the description ------------------------------------------

@case("missing-hf-tensor", "LLM_ENOTFOUND",
      "tensor 'model.layers.0.self_attn.k_proj.weight' not found (needed for "
      "'transformer.layers.0.attention.qkv.weight')")
def _(d):
    ts = [t for t in tensors() if t[0] != P + "self_attn.k_proj.weight"]
    write(d + "/model.safetensors", st_file(ts))


@case("wrong-hf-shape", "LLM_ESHAPE",
      "tensor 'model.layers.0.self_attn.k_proj.weight' expected [4, 8], found [8, 4]")
def _(d):
    ts = [(n, dt, [8, 4] if n == P + "self_attn.k_proj.weight" else s, b)
          for n, dt, s, b in tensors()]
    write(d + "/model.safetensors", st_file(ts))


@case("qkv-dtype-mismatch", "LLM_EFORMAT", "must share a dtype")
def _(d):
    write(d + "/model.safetensors", st_file(tensors({P + "self_attn.v_proj.weight": "F32"})))


def main():
    if os.path.isdir(BAD):
        shutil.rmtree(BAD)
    if os.path.isdir(GOOD):
        shutil.rmtree(GOOD)
    write(GOOD + "/config.json", config_text())
    write(GOOD + "/model.safetensors", good_file())
    lines = []
    for name, code, sub, fn in CASES:
        d = os.path.join(BAD, name)
        os.makedirs(d)
        fn(d)
        if name not in ("no-config",) and not os.path.exists(d + "/config.json"):
            write(d + "/config.json", config_text())
        lines.append("%s\t%s\t%s\n" % (name, code, sub))
    write(os.path.join(BAD, "cases.tsv"),
          "# case\terror code\tsubstring of the message (tests/formats/make_bad.py writes this)\n"
          + "".join(lines))
    print("wrote %d cases under %s" % (len(CASES), os.path.relpath(BAD)))


if __name__ == "__main__":
    sys.exit(main())
