#!/usr/bin/env python3
"""train_default.py - train the small built-in default model on Python's own source.

The default model exists so that `llm-run` prints plausible text on any
machine without downloading anything.  Its training text is the Python
standard library found next to the interpreter running this script (every
*.py file under sysconfig's "stdlib" path, the test suite included, codec
tables and site-packages left out, files in sorted order), so the corpus is
on every machine that can run the script.  The design choice is to keep everything
deterministic and small enough for a laptop CPU: fixed seeds, a fixed number
of optimizer steps, a ~4 M parameter Llama-shaped model, a 4096-entry
byte-level BPE tokenizer trained here as well.  Training runs the matrix
products in bf16 (torch.autocast) over f32 master weights, which halves the
step time on CPUs with bf16 instructions; 2000 steps take about 27 minutes
on two free cores (0.8 s per step), longer on a busy machine.

Output: a Hugging Face checkpoint directory (bf16 model.safetensors,
config.json, generation_config.json, tokenizer.json, tokenizer_config.json)
that llm-convert turns into lib/data/default.llm.

Usage:  nice -n 10 python3 lib/data/train_default.py [OUT_DIR]   (default build-default/hf)
        python3 lib/data/train_default.py OUT_DIR --samples   (samples only)
Run it with the same Python version to reproduce the same corpus; other
versions give a model of similar quality, not the same bits.
"""

import argparse
import json
import math
import os
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Sleep rather than spin while waiting for the other thread: on a shared
# machine spinning threads slow everyone down, this job included.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

BOS = "<|bos|>"
EOS = "<|eos|>"

# Folders of the standard library that are data rather than code (codec
# tables, the pydoc topic strings) or not the library's own.
SKIP_DIRS = {"site-packages", "dist-packages", "encodings", "__pycache__", "pydoc_data"}
MAX_FILE_BYTES = 400_000

# Prompts whose greedy continuations go into lib/data/README.md.
SAMPLE_PROMPTS = ["def fibonacci(n):", "class Stack:\n    def __init__(self):",
                  "import os\nimport sys\n\n\ndef main("]


def corpus_files(stdlib):
    """All *.py files under stdlib that are worth training on, in sorted order."""
    out = []
    root = Path(stdlib)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py") or name.startswith("_sysconfigdata"):
                continue
            p = Path(dirpath) / name
            if p.stat().st_size > MAX_FILE_BYTES:
                continue
            out.append(p)
    out.sort(key=lambda p: p.relative_to(root).as_posix())
    return out


def read_texts(files):
    texts = []
    for p in files:
        try:
            t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if t.strip():
            texts.append(t)
    return texts


def train_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    return tok


def encode_corpus(tok, texts):
    """One token stream: each file's tokens (post-processor adds BOS) then EOS."""
    eos_id = tok.token_to_id(EOS)
    parts = []
    for enc in tok.encode_batch(texts):
        parts.append(np.asarray(enc.ids + [eos_id], dtype=np.int32))
    return np.concatenate(parts)


def make_model(vocab_size, bos_id, eos_id, args):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        intermediate_size=args.intermediate, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=bos_id, eos_token_id=eos_id, hidden_act="silu",
        attn_implementation="eager")
    return LlamaForCausalLM(cfg)


def batch_at(stream, starts, seq, bos_id):
    """Inputs are BOS + seq-1 stream tokens, targets the next seq tokens, so
    every window looks like the start of a document to the model."""
    x = np.empty((len(starts), seq), dtype=np.int64)
    y = np.empty((len(starts), seq), dtype=np.int64)
    for i, s in enumerate(starts):
        x[i, 0] = bos_id
        x[i, 1:] = stream[s:s + seq - 1]
        y[i] = stream[s:s + seq]
    return torch.from_numpy(x), torch.from_numpy(y)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def eval_loss(model, stream, args, bos_id, n_batches=8):
    model.eval()
    g = np.random.default_rng(1234)
    total = 0.0
    for _ in range(n_batches):
        starts = g.integers(0, len(stream) - args.seq, size=args.batch)
        x, y = batch_at(stream, starts, args.seq, bos_id)
        x, y = x.to(args.device), y.to(args.device)
        with torch.autocast(args.device, dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        total += torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                                   y.view(-1)).item()
    model.train()
    return total / n_batches


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="build-default/hf", help="output checkpoint dir")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where to train (cuda: the same recipe, much faster)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--bench", type=int, default=0, help="time this many steps and exit")
    ap.add_argument("--samples", action="store_true",
                    help="only print samples from the checkpoint already in OUT_DIR")
    args = ap.parse_args()
    if args.samples:
        torch.set_num_threads(1)
        print_samples(args.out)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()

    stdlib = sysconfig.get_paths()["stdlib"]
    files = corpus_files(stdlib)
    texts = read_texts(files)
    print(f"corpus: {len(texts)} files, {sum(map(len, texts)) / 1e6:.1f} M chars "
          f"from {stdlib} (python {sys.version.split()[0]})", flush=True)
    # Every 40th file is held out for the validation loss.
    train_texts = [t for i, t in enumerate(texts) if i % 40 != 7]
    val_texts = [t for i, t in enumerate(texts) if i % 40 == 7]

    tok = train_tokenizer(train_texts, args.vocab)
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    train = encode_corpus(tok, train_texts)
    val = encode_corpus(tok, val_texts)
    print(f"tokenizer: {tok.get_vocab_size()} entries; train {len(train) / 1e6:.2f} M tokens, "
          f"val {len(val) / 1e6:.2f} M tokens ({time.time() - t0:.0f} s)", flush=True)

    model = make_model(tok.get_vocab_size(), bos_id, eos_id, args)
    with torch.no_grad():  # deterministic init independent of HF's init order
        g = torch.Generator().manual_seed(args.seed)
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02, generator=g)
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    p.mul_(1.0 / math.sqrt(2 * args.layers))
    model.to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    rng = np.random.default_rng(args.seed)
    model.train()
    steps = args.bench or args.steps
    t_train = time.time()
    smooth = None
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, args)
        starts = rng.integers(0, len(train) - args.seq, size=args.batch)
        x, y = batch_at(train, starts, args.seq, bos_id)
        x, y = x.to(args.device), y.to(args.device)
        with torch.autocast(args.device, dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                                 y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.9 * smooth + 0.1 * loss.item()
        if step % 25 == 0 or step == steps - 1:
            el = time.time() - t_train
            print(f"step {step:5d}  loss {loss.item():.4f}  smooth {smooth:.4f}  "
                  f"lr {lr_at(step, args):.2e}  {el / (step + 1):.2f} s/step  {el / 60:.1f} min",
                  flush=True)
        if step > 0 and step % 500 == 0:
            print(f"step {step:5d}  val loss {eval_loss(model, val, args, bos_id):.4f}", flush=True)
    if args.bench:
        return
    val_loss = eval_loss(model, val, args, bos_id)
    print(f"final: train loss (smoothed) {smooth:.4f}, val loss {val_loss:.4f}, "
          f"{(time.time() - t0) / 60:.1f} min total", flush=True)

    save(model, tok, args.out, bos_id, eos_id)
    info = {"steps": args.steps, "batch": args.batch, "seq": args.seq,
            "train_loss_smoothed": round(smooth, 4), "val_loss": round(val_loss, 4),
            "params": n_params, "python": sys.version.split()[0],
            "torch": torch.__version__, "train_tokens": int(len(train)),
            "device": args.device, "layers": args.layers, "hidden": args.hidden,
            "heads": args.heads, "kv_heads": args.kv_heads, "intermediate": args.intermediate,
            "minutes": round((time.time() - t0) / 60, 1)}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print_samples(args.out)


def save(model, tok, out, bos_id, eos_id):
    from transformers import GenerationConfig, PreTrainedTokenizerFast
    os.makedirs(out, exist_ok=True)
    model = model.to("cpu", torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   model_max_length=512)
    fast.save_pretrained(out)


def print_samples(out):
    """Greedy continuations from the saved (bf16) checkpoint, computed in f32,
    plain and with a repetition penalty of 1.3 (small models loop under
    plain greedy decoding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    for penalty in (1.0, 1.3):
        for p in SAMPLE_PROMPTS:
            ids = tok(p, return_tensors="pt").input_ids
            with torch.no_grad():
                gen = model.generate(ids, max_new_tokens=64, do_sample=False,
                                     repetition_penalty=penalty)
            text = tok.decode(gen[0], skip_special_tokens=True)
            print(f"--- greedy, 64 tokens, repetition_penalty {penalty}: {json.dumps(p)}\n"
                  f"{text}\n", flush=True)


if __name__ == "__main__":
    main()
