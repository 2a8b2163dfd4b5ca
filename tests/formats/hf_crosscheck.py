#!/usr/bin/env python3
"""hf_crosscheck.py - compares llm's reading of sample configs with what
Hugging Face transformers makes of them, using only the Python standard
library.

What transformers makes of each folder is committed next to it as
expected.json, written by tests/formats/hub/gen_expected.py (the one script
that needs torch and transformers; rerun it after adding a folder or moving
to a new transformers release, see its header).  This script runs llm's own
reader on each folder (`test-hfconfig --dump DIR`, one line of JSON) and
compares: parameter count, sizes, head dim, kv heads, rotary dims, rope type
and parameters (and the attention factor transformers derives for
yarn/longrope), per-layer sliding windows, norm epsilon, tied embeddings and
the bos/eos ids generate() would use.

Nothing is skipped silently.  A folder fails when llm cannot read it
(llm's one-line error is printed), when it has no expected.json, or when a
figure differs, unless the folder is in NOT_READ_YET below; a folder whose
config transformers itself refuses is reported as not compared.

    python3 tests/formats/hf_crosscheck.py BUILD/tests/formats/test-hfconfig [hub|configs|DIR...]

`hub` and `configs` stand for every folder of tests/formats/hub/ and
tests/formats/configs/; with neither, both.  Exits 1 on any failure.
"""
import glob
import json
import math
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Families llm does not read yet: folders whose config llm refuses today.
# Each entry names the folder and why; a listed folder that llm reads is a
# failure too, so the list shrinks as support lands.
NOT_READ_YET = {
}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def yarn_attention(r):
    def mscale(s, m=1.0):
        return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0
    if r["mscale"] and r["mscale_all_dim"]:
        return mscale(r["factor"], r["mscale"]) / mscale(r["factor"], r["mscale_all_dim"])
    return mscale(r["factor"])


def compare(ours, exp):
    """The list of differences between llm's description and expected.json."""
    bad = []

    def eq(what, a, b, tol=0.0):
        if isinstance(a, float) or isinstance(b, float):
            ok = a is not None and b is not None and abs(a - b) <= tol + 1e-12 * abs(b)
        else:
            ok = a == b
        if not ok:
            bad.append("%s: llm %r, transformers %r" % (what, a, b))

    m = exp["model"]
    eq("parameters", ours["n_params"], m["n_params"])
    eq("n_layers", ours["n_layers"], m["num_layers"])
    eq("vocab_size", ours["vocab_size"], m["vocab_size"])
    eq("hidden", ours["hidden"], m["hidden_size"])
    eq("n_heads", ours["n_heads"], m["num_attention_heads"])
    eq("head_dim", ours["head_dim"], m["head_dim"])
    eq("n_kv_heads", ours["n_kv_heads"], m["num_kv_heads"])
    rope = m.get("rope")
    r = ours["rope"]
    if rope is not None and ours["pos"] == "rope":
        rp = rope["parameters"]
        rt = rope["rope_type"]
        eq("rope.rot_dims", r["rot_dims"], rope["rot_dims"])
        eq("rope.theta", r["theta"], rope["theta"])
        eq("rope.scaling", r["scaling"], {"default": "none", "su": "longrope"}.get(rt, rt))
        if rt != "default":
            eq("rope.factor", r["factor"], float(rp["factor"]))
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
                if a == 0:  # llm derives it at run time, as transformers does
                    if rt == "yarn":
                        a = yarn_attention(r)
                    else:
                        a = 1.0 if r["factor"] <= 1 else math.sqrt(
                            1 + math.log(r["factor"]) / math.log(r["orig_max_pos"]))
                eq("rope attention factor", a, rope["attention_factor"], 1e-9)
            if rt == "longrope":  # float32, as transformers builds its tensor from them
                for k in ("long_factor", "short_factor"):
                    eq("rope." + k, [f32(x) for x in r[k]], rp[k])
    elif rope is not None or ours["pos"] == "rope":
        eq("rotary embedding", ours["pos"] == "rope", rope is not None)
    local = (rope or {}).get("local")
    if local is not None:  # the sliding layers' own base (Gemma 3)
        eq("rope_local_theta", ours.get("rope_local_theta", 0.0), local["theta"])
        eq("local rope type", local["rope_type"], "default")
        eq("local_rope_layers", ours.get("local_rope_layers", []), local["layers"])
    elif ours.get("rope_local_theta"):
        eq("rope_local_theta", ours["rope_local_theta"], None)
    if m.get("window_layers") is not None:
        win = m["window_layers"]
        eq("window_layers", ours["window_layers"], win)
        if win:
            eq("sliding_window", ours["sliding_window"], m["sliding_window"])
    if m.get("nope_layers") is not None:
        eq("nope_layers", ours.get("nope_layers", []), m["nope_layers"])
    elif ours.get("nope_layers"):
        eq("nope_layers", ours["nope_layers"], None)
    if m.get("norm_eps") is not None:
        eq("norm_eps", ours["norm_eps"], m["norm_eps"])
    eq("tied_embeddings", ours["tied_embeddings"], m["tie_word_embeddings"])
    g = exp.get("generation") or {}
    if "refused" not in g:
        eq("eos_ids", ours["eos_ids"], [e for e in g.get("eos_token_ids", []) if e >= 0])
        bos = g.get("bos_token_id")
        eq("bos_id", ours["bos_id"], -1 if bos is None or bos < 0 else bos)
    return bad


def folders(args):
    sets = {"hub": "hub", "configs": "configs"}
    out = []
    for a in args or ["configs", "hub"]:
        if a in sets:
            out += sorted(os.path.dirname(p) for p in
                          glob.glob(os.path.join(HERE, sets[a], "*", "config.json")))
        else:
            out.append(a.rstrip("/"))
    return out


def check(exe, d):
    """(failed, line) for folder d."""
    name = os.path.basename(d)
    listed = NOT_READ_YET.get(name)
    out = subprocess.run([exe, "--dump", d], capture_output=True, text=True)
    if out.returncode != 0:
        err = (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1]
        if listed:
            return False, "%-40s not read yet (%s): %s" % (name, listed, err)
        return True, "%-40s FAIL llm cannot read it: %s" % (name, err)
    if listed:
        return True, "%-40s FAIL llm reads it now: remove it from NOT_READ_YET" % name
    p = os.path.join(d, "expected.json")
    if not os.path.exists(p):
        return True, "%-40s FAIL no expected.json (run tests/formats/hub/gen_expected.py)" % name
    exp = json.load(open(p))
    if "refused" in exp:
        return False, "%-40s not compared: transformers %s refuses it (%s)" % (
            name, exp["transformers"], exp["refused"])
    ours = json.loads(out.stdout.splitlines()[0])
    bad = compare(ours, exp)
    if bad:
        return True, "%-40s FAIL differs from transformers %s\n    %s" % (
            name, exp["transformers"], "\n    ".join(bad))
    return False, "%-40s same as transformers %s (%d parameters)" % (
        name, exp["transformers"], ours["n_params"])


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) > 1 else 2
    exe = sys.argv[1]
    dirs = folders(sys.argv[2:])
    if not dirs:
        print("no folders to check")
        return 1
    failed = 0
    for d in dirs:
        bad, line = check(exe, d)
        failed += bad
        print(line)
    print("%d passed, %d failed" % (len(dirs) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
