#!/usr/bin/env python3
"""Perplexity references for llm-quantize's report, computed by Hugging Face
transformers: each fixture (tests/fixtures/<name>, f32) over the bundled
held-out text (lib/data/eval.txt), tokenized by the fixture's own tokenizer
with its special tokens, the first TOKENS tokens cut into windows of WINDOW
tokens, each window a sequence of its own from position 0; every position
but a window's last predicts the next token.  Writes
tests/quant/ppl_reference.json.

    python3 tests/quant/gen_ppl_ref.py      (torch and transformers installed)
"""
import json
import math
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = ["llama3-f32", "gpt2", "qwen3", "gemma2", "falcon-40b"]
TOKENS, WINDOW = 400, 64


def perplexity(name, text):
    d = os.path.join(ROOT, "tests", "fixtures", name)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    ids = tok(text, add_special_tokens=True)["input_ids"][:TOKENS]
    nll, count = 0.0, 0
    with torch.no_grad():
        for w0 in range(0, len(ids) - 1, WINDOW):
            win = ids[w0:w0 + WINDOW]
            if len(win) < 2:
                break
            logits = model(torch.tensor([win])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            for i in range(len(win) - 1):
                nll -= logp[i, win[i + 1]].item()
                count += 1
    return {"tokens": len(ids), "window": WINDOW, "predictions": count,
            "first_ids": ids[:8], "ppl": math.exp(nll / count)}


def main():
    with open(os.path.join(ROOT, "lib", "data", "eval.txt"), encoding="utf-8") as f:
        text = f.read()
    out = {name: perplexity(name, text) for name in FIXTURES}
    path = os.path.join(ROOT, "tests", "quant", "ppl_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    for k, v in out.items():
        print(k, v["ppl"], file=sys.stderr)


if __name__ == "__main__":
    main()
