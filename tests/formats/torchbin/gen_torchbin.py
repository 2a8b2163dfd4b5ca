#!/usr/bin/env python3
"""gen_torchbin.py - the PyTorch .bin fixtures of test-torchbin and
test-torchbin-convert (tests/formats/torchbin/).

Writes, next to this script:
- tiny.bin: torch.save of a state dict of f32, f16 and bf16 tensors, with a
  tied pair (two names, one tensor), a view at a storage offset, a 0-d
  tensor, an empty tensor and a parameter; tiny.safetensors: the same
  tensors (the tied pair as two copies), the reference for every byte.
- zip64.bin: tiny.bin's entries rewritten by the small ZIP writer below with
  every size and offset in ZIP64 extra fields (as torch writes them for
  files over 4 GiB); it must open like tiny.bin.
- sharded/: tiny.bin's tensors split over pytorch_model-0000{1,2}-of-00002.bin
  and pytorch_model.bin.index.json, as transformers writes them.
- bad/*.bin: files that must be refused, each with one line in
  bad/cases.tsv (file, error code, part of the message):
  globals a state dict never names (os.system, posix.system,
  builtins.eval by STACK_GLOBAL) written by hand with pickle opcodes inside
  a valid archive, a non-contiguous tensor, a truncated archive, a
  compressed entry, a tensor past its storage, a missing storage, a
  storage whose entry is short, an opcode torch never writes, a pickle that
  is not a dict, and the legacy (pre-1.6) format.
- e2e/bin and e2e/st: one tiny random LlamaForCausalLM (tied embeddings)
  saved by save_pretrained, with the tokenizer files of
  tests/fixtures/llama3-f32; in e2e/bin its model.safetensors is replaced by
  pytorch_model.bin, torch.save of model.state_dict() (what
  save_pretrained(safe_serialization=False) wrote up to transformers 4,
  tied lm_head.weight included; transformers 5 always writes safetensors).
  llm-convert must make the same tensors of both.

The tensors are the same on every run (fixed seeds) and the files written
by the ZIP writer below are the same bytes; those torch.save writes differ
from run to run in their .data/serialization_id entry only.
Run with a Python that has torch and transformers:
    /tmp/hfenv/bin/python tests/formats/torchbin/gen_torchbin.py
"""

import json
import os
import shutil
import struct
import sys
import zipfile
import zlib

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def tiny_state_dict():
    g = torch.Generator().manual_seed(1234)
    sd = {}
    emb = torch.randn(16, 8, generator=g)
    sd["model.embed_tokens.weight"] = emb
    sd["lm_head.weight"] = emb  # tied: one storage, two names
    sd["model.norm.weight"] = torch.randn(8, generator=g).half()
    sd["model.layers.0.mlp.up_proj.weight"] = torch.randn(12, 8, generator=g).bfloat16()
    base = torch.randn(40, generator=g)
    sd["model.layers.0.view"] = base[8:32].view(4, 6)  # at storage offset 8
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(3, 2, generator=g).half())
    return sd


# ---- a small ZIP writer (stored entries; optionally ZIP64 everywhere) --------


def write_zip(path, entries, zip64=False, method=0):
    """entries: [(name, bytes)]; method 8 deflates every entry."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        crc = zlib.crc32(data)
        stored = data
        if method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored = c.compress(data) + c.flush()
        off = len(out)
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(stored))
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(extra))
        else:
            extra = b""
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc,
                               len(stored), len(data), len(nb), 0)
        out += nb + extra + stored
        if zip64:
            cx = struct.pack("<HHQQQ", 1, 24, len(data), len(stored), off)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0,
                                   crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(cx), 0, 0, 0, 0,
                                   0xFFFFFFFF)
            central += nb + cx
        else:
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0,
                                   crc, len(stored), len(data), len(nb), 0, 0, 0, 0, 0, off)
            central += nb
    cd_off = len(out)
    out += central
    n = len(entries)
    if zip64:
        e64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central),
                           cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_off, 0)
    with open(path, "wb") as f:
        f.write(out)


def zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


# ---- pickles written by hand --------------------------------------------------


def s(x):
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(x):
    return b"J" + struct.pack("<i", x)


def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def tensor(stype, key, numel, offset, size, stride):
    """_rebuild_tensor_v2 of a storage, as torch.save writes it."""
    pid = tup(s("storage"), glob("torch", stype), s(key), s("cpu"), i(numel)) + b"Q"
    args = pid + i(offset) + tup(*map(i, size)) + tup(*map(i, stride)) + b"\x89"
    args += glob("collections", "OrderedDict") + b")R"
    return glob("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"


def state_dict(items):
    return b"\x80\x02}(" + b"".join(s(k) + v for k, v in items) + b"u."


def archive(path, pickle, storages):
    entries = [("archive/data.pkl", pickle), ("archive/byteorder", b"little")]
    entries += [("archive/data/" + k, v) for k, v in storages]
    entries += [("archive/version", b"3\n")]
    write_zip(path, entries)


def call(fn_global, arg):
    return b"\x80\x02" + fn_global + tup(s(arg)) + b"R."


def write_bad(bad, cases):
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    payload = "touch /tmp/llm-torchbin-pwned"
    archive(f"{bad}/global-os-system.bin", call(glob("os", "system"), payload), [])
    cases.append(("global-os-system.bin", "LLM_EUNSUPPORTED", "'os.system'"))
    archive(f"{bad}/global-posix-system.bin", call(glob("posix", "system"), payload), [])
    cases.append(("global-posix-system.bin", "LLM_EUNSUPPORTED", "'posix.system'"))
    stack_global = b"\x80\x04" + s("builtins") + s("eval") + b"\x93" + tup(s("1+1")) + b"R."
    archive(f"{bad}/global-builtins-eval.bin", stack_global, [])
    cases.append(("global-builtins-eval.bin", "LLM_EUNSUPPORTED", "'builtins.eval'"))
    # a global hidden after a valid tensor, inside the dict
    sneaky = state_dict([("w", tensor("FloatStorage", "0", 4, 0, [4], [1])),
                         ("x", glob("subprocess", "check_call") + tup(s("id")) + b"R")])
    archive(f"{bad}/global-subprocess.bin", sneaky, [("0", f32)])
    cases.append(("global-subprocess.bin", "LLM_EUNSUPPORTED", "'subprocess.check_call'"))

    torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, f"{bad}/noncontiguous.bin")
    cases.append(("noncontiguous.bin", "LLM_EUNSUPPORTED", "not contiguous"))

    with open(f"{HERE}/tiny.bin", "rb") as f:
        data = f.read()
    with open(f"{bad}/truncated.bin", "wb") as f:
        f.write(data[: len(data) // 2])
    cases.append(("truncated.bin", "LLM_ETRUNC", "no zip end-of-central-directory"))

    write_zip(f"{bad}/compressed.bin", zip_entries(f"{HERE}/tiny.bin"), method=8)
    cases.append(("compressed.bin", "LLM_EUNSUPPORTED", "is compressed"))

    past = state_dict([("w", tensor("FloatStorage", "0", 4, 2, [3], [1]))])
    archive(f"{bad}/storage-range.bin", past, [("0", f32)])
    cases.append(("storage-range.bin", "LLM_ERANGE", "runs past its storage"))

    missing = state_dict([("w", tensor("FloatStorage", "7", 4, 0, [4], [1]))])
    archive(f"{bad}/storage-missing.bin", missing, [("0", f32)])
    cases.append(("storage-missing.bin", "LLM_ENOTFOUND", "no entry data/7"))

    short = state_dict([("w", tensor("FloatStorage", "0", 8, 0, [8], [1]))])
    archive(f"{bad}/storage-short.bin", short, [("0", f32)])
    cases.append(("storage-short.bin", "LLM_EFORMAT", "does not match its entry"))

    bad_op = b"\x80\x02}(" + s("w") + b"G" + struct.pack(">d", 1.0) + b"u."
    archive(f"{bad}/opcode.bin", bad_op, [])
    cases.append(("opcode.bin", "LLM_EFORMAT", "opcode 0x47"))

    archive(f"{bad}/not-a-dict.bin", b"\x80\x02]" + s("w") + b"a.", [])
    cases.append(("not-a-dict.bin", "LLM_EFORMAT", "not a state dict"))

    archive(f"{bad}/ndim.bin",
            state_dict([("w", tensor("FloatStorage", "0", 4, 0, [1] * 9, [1] * 9))]),
            [("0", f32)])
    cases.append(("ndim.bin", "LLM_EFORMAT", "at most 8 ints"))

    torch.save({"w": torch.ones(2)}, f"{bad}/legacy.bin", _use_new_zipfile_serialization=False)
    cases.append(("legacy.bin", "LLM_EUNSUPPORTED", "legacy torch.save format"))


def write_e2e():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, tie_word_embeddings=True, bos_token_id=509,
                      eos_token_id=510)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    tok = os.path.join(ROOT, "tests", "fixtures", "llama3-f32")
    for name, safe in (("bin", False), ("st", True)):  # safe: safetensors
        d = os.path.join(HERE, "e2e", name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d)
        if not safe:
            os.remove(os.path.join(d, "model.safetensors"))
            torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"))
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(tok, f), d)
    # the two config.json files must be the same bytes
    with open(os.path.join(HERE, "e2e", "st", "config.json"), "rb") as f:
        a = f.read()
    with open(os.path.join(HERE, "e2e", "bin", "config.json"), "rb") as f:
        assert f.read() == a
    assert os.path.exists(os.path.join(HERE, "e2e", "bin", "pytorch_model.bin"))


def main():
    sd = tiny_state_dict()
    torch.save(sd, f"{HERE}/tiny.bin")
    copies = {k: v.detach().clone().contiguous() for k, v in sd.items()}
    save_file(copies, f"{HERE}/tiny.safetensors")
    write_zip(f"{HERE}/zip64.bin", zip_entries(f"{HERE}/tiny.bin"), zip64=True)

    sh = f"{HERE}/sharded"
    shutil.rmtree(sh, ignore_errors=True)
    os.makedirs(sh)
    names = list(sd)
    parts = [names[:4], names[4:]]
    wm = {}
    for k, part in enumerate(parts):
        fn = f"pytorch_model-{k + 1:05d}-of-00002.bin"
        torch.save({n: sd[n] for n in part}, f"{sh}/{fn}")
        wm.update({n: fn for n in part})
    with open(f"{sh}/pytorch_model.bin.index.json", "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
        f.write("\n")

    bad = f"{HERE}/bad"
    shutil.rmtree(bad, ignore_errors=True)
    os.makedirs(bad)
    cases = []
    write_bad(bad, cases)
    with open(f"{bad}/cases.tsv", "w") as f:
        f.write("# file\terror\tpart of the message (one line, naming the file)\n")
        for c in cases:
            f.write("\t".join(c) + "\n")

    write_e2e()


if __name__ == "__main__":
    sys.exit(main())
