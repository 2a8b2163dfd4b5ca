#!/usr/bin/env python3
"""gen_cases.py - regenerate the expected outputs of the tokenizer tests.

The C test (tests/tokenizer/test_tokenizer.c) has no Python: it compares
libllm against the files this script writes, which are committed.

For every tokenizer it writes tests/tokenizer/cases/<name>.jsonl, one case a
line:

    {"text": ..., "ids": [...], "ids_special": [...], "decoded": ...,
     "decoded_special": ..., "decoded_skip": ...}

  ids              encode(text, add_special_tokens=False)
  ids_special      encode(text, add_special_tokens=True)
  decoded          decode(ids, skip_special_tokens=False)
  decoded_special  decode(ids_special, skip_special_tokens=False)
  decoded_skip     decode(ids_special, skip_special_tokens=True)

A case with "ids_only" has no text: random ids and their two decodes
("decoded", "decoded_skip" of "ids"), to exercise the decoders.

A case may carry "hex" instead of being plain text: the raw input bytes,
which are not valid UTF-8; the expectations are then those of
bytes.decode("utf-8", "replace"), the documented behaviour of llm_tok_encode
for invalid input.

Tokenizers: the five real vocabularies in tests/tokenizer/real/<name>/
(tokenizer.json.zst, decompressed with the `zstd` program; their own
cases.jsonl; origin in real/README.md), and small ones
trained here with the `tokenizers` library and written to
tests/tokenizer/data/<name>/tokenizer.json, each covering a different set of
normalizers, pre-tokenizers, added-token flags, post-processors and decoders.

data/tiny-spm also holds a hand-written tokenizer_config.json (bos/eos names,
add_bos_token) that agrees with its template, so the HF cases still hold
when libllm loads the folder; `tokenizers` itself ignores that file.

Usage: python3 tests/tokenizer/gen_cases.py [--real DIR] [--retrain]
(without --retrain the committed small tokenizers are reused as they are, so
regenerating the cases does not churn the vocabularies).
"""
import argparse
import json
import os
import subprocess
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_NAMES = ["gpt-2", "llama-spm", "deepseek-llm", "deepseek-coder", "starcoder"]

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# o200k's pre-tokenizer (GPT-OSS, GPT-4o): case-aware words with the
# contractions folded in case-insensitively, numbers of up to three digits
O200K_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
               r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+"
               r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PY_CODE = '''import os, sys

def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

class Point:
    def __init__(self, x=0.0, y=0.0):
        self.x, self.y = x, y

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"

if __name__ == "__main__":
    print([fib(i) for i in range(10)], file=sys.stderr)
'''

C_CODE = '''#include <stdio.h>
#include <stdlib.h>

/* sum the arguments */
int main(int argc, char **argv)
{
\tlong total = 0;
\tfor (int i = 1; i < argc; i++) {
\t\ttotal += strtol(argv[i], NULL, 10);
\t}
\tprintf("%ld\\n", total);
\treturn total > 0 ? 0 : 1;
}
'''

JSON_TEXT = '''{
  "name": "llm",
  "version": [0, 1, 0],
  "tags": ["c", "cuda", "inference"],
  "nested": {"pi": 3.14159, "ok": true, "none": null, "s": "a\\"b\\\\c\\u00e9"}
}'''

CORPUS = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\t\n",
    "\r\n",
    "a\r\nb\rc\n\rd",
    "Hello world",
    " Hello world",
    "Hello World!",
    "Hello, world! How are you?",
    "hello   world    with   many spaces",
    "trailing spaces   ",
    "   leading spaces",
    "tab\tseparated\tvalues\t\t",
    "mixed \t \n \r\n  whitespace\n\n\n  end  ",
    "It's a dog's life; they're here, we've gone, I'm sure you'll see, he'd know",
    "IT'S LOUD, THEY'RE HERE, WE'VE GONE, I'M OUT, YOU'LL SEE, HE'D KNOW",
    "don't can't won't shouldn't",
    "Café naïve résumé façade coöperate São Paulo Zürich Ærøskøbing",
    "Ünïcödé àçcèñts: ÀÉÎÕÜ àéîõü ß ẞ ŀ Œuvre",
    "Combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ (composed)",
    "Ligatures and compat: ﬁ ﬂ ① ² ½ Ｆｕｌｌｗｉｄｔｈ ｶﾀｶﾅ ㎏ ™",
    "İstanbul ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ Straße",
    "한국어 텍스트입니다. 안녕하세요, 세계!",
    "日本語のテキストです。ひらがな、カタカナ、漢字。",
    "中文文本：你好，世界！这是一个测试。",
    "مرحبا بالعالم! هذا نص عربي.",
    "Привет, мир! Это русский текст.",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Emoji: 😀 😃 😄 👍🏽 🎉",
    "ZWJ: 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 ❤️‍🔥",
    "Flags: 🇫🇷 🇯🇵 🇺🇸 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "🦙🦙🦙 llama llama",
    "Numbers: 0 1 12 123 1234 12345 123456 3.14159 -42 1e10 0x1F 1,000,000",
    "2024-11-21T19:38:00Z 10:30 am 99.9% $1.50 €2,50",
    "١٢٣ ٤٥٦ ۷۸۹ ๑๒๓ 一二三",
    "v1.2.3-rc.4+build.5",
    PY_CODE,
    C_CODE,
    JSON_TEXT,
    "<html><body class=\"x\">Hi &amp; bye</body></html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "x=[1,2,3];y={'a':1,\"b\":2};z=(a+b)*c/d-e%f**g//h",
    "path/to/file.txt C:\\Windows\\System32 ~/.bashrc",
    "email@example.com https://example.org/a?b=c&d=e#f",
    "!!!???...,,,;;;:::---___===+++***",
    "((([[[{{{<<<>>>}}}]]])))",
    "____init____ __main__ _x_ x__y",
    "ALLCAPS lowercase MiXeDcAsE camelCase snake_case kebab-case",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "\u00a0non\u00a0breaking\u2009thin\u3000ideographic\u200bzero\u200dwidth",
    "\u2028line sep\u2029para sep\x0bvt\x0cff\x85nel",
    "control \x01\x02\x1f chars \x7f del",
    "nul \x00 inside",
    "replacement \ufffd char and private \ue000 use",
    "noncharacters \ufdd0 \uffff and astral \U0001d11e \U0010fffd",
    "lone combining \u0301 at start and double \u0301\u0302",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "<s>Hello</s> <s> spaced </s>",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "text <|endoftext|> more text<|endoftext|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "Fill the <mask> here and <mask>there, <mask>",
    "single <sw> word <sw>x x<sw> <sw>",
    "strip   [MASK]   around  [MASK]x",
    "right <rs>   gone <rs>\n\nnext",
    "Ä and A\u0308 match the normalized added token",
    "<unk> <pad> [CLS] [SEP] <0x41> <0xZZ>",
    "▁ already ▁▁ metaspace ▁x",
    "Ġ already Ċ byte-level ĠĠx",
    "ied 4 ½ months",
    "Führer",
    "\n =",
    "' era",
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
]

INVALID_BYTES = [
    b"\xff",
    b"abc\x80def",
    b"\xc3(",
    b"\xe2\x82",
    b"truncated \xe2\x82 euro \xe2\x82\xac ok",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80 surrogate",
    b"\xc0\xaf overlong",
    b"\xf4\x90\x80\x80 too big",
    b"mixed \xfe\xfe valid \xc3\xa9 end\xc3",
]

CODE_LINES = PY_CODE.splitlines() + C_CODE.splitlines() + JSON_TEXT.splitlines()


def long_text():
    parts = []
    for i in range(40):
        parts.append(CORPUS[10 + (i * 7) % (len(CORPUS) - 10)])
        parts.append(" %d " % (i * 37))
    return "\n".join(parts)


def training_text():
    out = []
    for rep in range(30):
        for s in CORPUS:
            out.append(s)
        out.extend(CODE_LINES)
    words = ("the of and to in is that for it as with was on be by this are or his from at "
             "which but have an they you were her she there one all we can their has been if "
             "more when will would who so no").split()
    for i in range(3000):
        k = (i * 2654435761) % 1000003
        out.append(" ".join(words[(k >> j) % len(words)] for j in range(0, 12, 2)) + ".")
    return out


def byte_fallback_vocab(tok, specials):
    """Rewrite a trained model's vocab so ids 0..len(specials)-1 are the specials,
    the next 256 are <0x00>..<0xFF>, and the trained pieces follow."""
    j = json.loads(tok.to_str())
    old = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in old:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    j["model"]["vocab"] = vocab
    for t in j["added_tokens"]:
        t["id"] = vocab[t["content"]]
    return j


def legacy_merges(j):
    j["model"]["merges"] = [a + " " + b for a, b in j["model"]["merges"]]
    return j


def bytelevel_base(split, name_vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=name_vocab, show_progress=False, min_frequency=2,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), tr)
    return tok


def build_l3():
    tok = bytelevel_base(LLAMA3_SPLIT, 1900)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|reserved_special_token_0|>"]
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    return j


def build_qwen2():
    tok = bytelevel_base(QWEN2_SPLIT, 1700)
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                            AddedToken("[MASK]", special=True, lstrip=True, rstrip=True,
                                       normalized=False)])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False),
                    AddedToken("</tool_call>", special=False, normalized=False),
                    AddedToken("<sw>", special=False, single_word=True, normalized=False),
                    AddedToken("<rs>", special=False, rstrip=True, normalized=True),
                    AddedToken("Ä", special=False, normalized=True)])
    eos = tok.token_to_id("<|im_end|>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <|im_end|>", pair="$A <|im_end|> $B:1 <|im_end|>:1",
        special_tokens=[("<|im_end|>", eos)])
    return legacy_merges(json.loads(tok.to_str()))


def build_spm_model(normalizer, pre):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tr = trainers.BpeTrainer(vocab_size=1300, show_progress=False, min_frequency=2,
                             special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=160)
    tok.train_from_iterator(training_text(), tr)
    return tok


def build_spm():
    tok = build_spm_model(normalizers.NFKC(),
                          pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                   split=False))
    j = byte_fallback_vocab(tok, ["<unk>", "<s>", "</s>"])
    tok = Tokenizer.from_str(json.dumps(j))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", 1)])
    return json.loads(tok.to_str())


def variant(base, normalizer=None, pre=None, decoder=None, post=None, added=None, special=None,
            legacy=False, model_edit=None):
    """A new tokenizer sharing base's model but with other components."""
    tok = Tokenizer.from_str(json.dumps(base))
    j = json.loads(tok.to_str())
    j["normalizer"] = None
    j["pre_tokenizer"] = None
    j["decoder"] = None
    j["post_processor"] = None
    tok = Tokenizer.from_str(json.dumps(j))
    if normalizer is not None:
        tok.normalizer = normalizer
    if pre is not None:
        tok.pre_tokenizer = pre
    if decoder is not None:
        tok.decoder = decoder
    if special:
        tok.add_special_tokens(special)
    if added:
        tok.add_tokens(added)
    if post is not None:
        tok.post_processor = post(tok) if callable(post) else post
    j = json.loads(tok.to_str())
    if model_edit:
        model_edit(j["model"])
    if legacy:
        legacy_merges(j)
    return j


def build_classic():
    tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                           normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
        pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tr = trainers.BpeTrainer(vocab_size=1200, show_progress=False, min_frequency=2,
                             special_tokens=["<unk>", "<s>", "</s>", "<pad>"], limit_alphabet=100,
                             end_of_word_suffix="</w>")
    tok.train_from_iterator(training_text(), tr)
    tok.post_processor = processors.BertProcessing(("</s>", 2), ("<s>", 1))
    return json.loads(tok.to_str())


def build_subword():
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Replace(Regex(r"[0-9]{4,}"), "#")])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tr = trainers.BpeTrainer(vocab_size=1200, show_progress=False, min_frequency=2,
                             special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
                             limit_alphabet=120, continuing_subword_prefix="##")
    tok.train_from_iterator(training_text(), tr)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return json.loads(tok.to_str())


def build_trained():
    """The tokenizers trained here (retrained only with --retrain)."""
    return {"tiny-l3": build_l3(), "tiny-qwen2": build_qwen2(), "tiny-spm": build_spm(),
            "tiny-classic": build_classic(), "tiny-subword": build_subword()}


def build_variants(spm, l3, classic):
    """Tokenizers that reuse a trained model with other components."""
    out = {}
    out["tiny-spm-always"] = variant(
        spm,
        normalizer=normalizers.Sequence([normalizers.Strip(left=True, right=True),
                                         normalizers.NFKC()]),
        pre=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        decoder=decoders.Sequence([decoders.ByteFallback(),
                                   decoders.Metaspace(replacement="▁", prepend_scheme="always"),
                                   decoders.Fuse()]),
        post=processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                           special_tokens=[("<s>", 1), ("</s>", 2)]),
        legacy=True)
    out["tiny-spm-never"] = variant(
        spm,
        normalizer=normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "),
                                         normalizers.NFKD()]),
        pre=pre_tokenizers.Sequence([
            pre_tokenizers.Punctuation(behavior="contiguous"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)]),
        decoder=decoders.Sequence([decoders.ByteFallback(),
                                   decoders.Metaspace(replacement="▁", prepend_scheme="never"),
                                   decoders.Strip(" ", 0, 1)]),
        model_edit=lambda m: m.update(fuse_unk=False))
    out["tiny-spm-legacy"] = variant(
        spm,
        normalizer=normalizers.Sequence([normalizers.Prepend("▁"),
                                         normalizers.Replace(" ", "▁")]),
        decoder=decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)]),
        special=[AddedToken("<s>", special=True, normalized=False),
                 AddedToken("</s>", special=True, normalized=False)],
        added=[AddedToken(" hello", special=False, normalized=True),
               AddedToken("wor", special=False, normalized=True, single_word=True)],
        post=processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                           special_tokens=[("<s>", 1)]))
    out["tiny-splits"] = variant(
        spm,
        normalizer=normalizers.Sequence([normalizers.Replace(Regex(r" {2,}"), " "),
                                         normalizers.Lowercase(), normalizers.NFC()]),
        pre=pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\s+"), behavior="removed"),
            pre_tokenizers.Split("-", behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"\d"), behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[aeiou]+"), behavior="contiguous", invert=True),
            pre_tokenizers.Split(Regex(r"\p{P}"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"x+"), behavior="removed", invert=True)]),
        decoder=decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()]))
    out["tiny-gpt2-prefix"] = variant(
        l3,
        pre=pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True),
        decoder=decoders.ByteLevel(),
        special=[AddedToken("<mask>", special=True, lstrip=True, normalized=False)],
        post=lambda t: processors.RobertaProcessing(
            ("<|end_of_text|>", t.token_to_id("<|end_of_text|>")),
            ("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))),
        model_edit=lambda m: m.update(ignore_merges=False))
    out["tiny-o200k"] = variant(
        l3,
        pre=pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(O200K_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        decoder=decoders.ByteLevel(),
        special=[AddedToken("<|return|>", special=True, normalized=False),
                 AddedToken("<|channel|>", special=True, normalized=False)])
    out["tiny-bl-misc"] = variant(
        l3,
        normalizer=normalizers.Sequence([normalizers.NFKD(), normalizers.Lowercase()]),
        pre=pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Split(Regex(r"'s|'t|'re"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[^\p{L}\p{N}]+"), behavior="merged_with_next"),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)]),
        decoder=decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 1)]),
        post=processors.ByteLevel(trim_offsets=True),
        model_edit=lambda m: m.update(ignore_merges=False))
    out["tiny-bert-norm"] = variant(
        classic,
        normalizer=normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                              strip_accents=None, lowercase=True),
        pre=pre_tokenizers.Sequence([pre_tokenizers.CharDelimiterSplit("x"),
                                     pre_tokenizers.BertPreTokenizer()]),
        decoder=decoders.BPEDecoder(suffix="</w>"),
        post=processors.RobertaProcessing(("</s>", 2), ("<s>", 1)))
    out["tiny-spm-regexdec"] = variant(
        spm,
        normalizer=normalizers.Sequence([normalizers.NFD(), normalizers.Strip(left=True,
                                                                              right=False),
                                         normalizers.Prepend("▁"),
                                         normalizers.Replace(" ", "▁")]),
        decoder=decoders.Sequence([decoders.Replace(Regex("▁+"), " "), decoders.ByteFallback(),
                                   decoders.Fuse(), decoders.Strip(" ", 2, 0)]),
        post=processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                  processors.TemplateProcessing(
                                      single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                      special_tokens=[("<s>", 1), ("</s>", 2)])]))
    return out


def decode(tok, ids, skip):
    # Some decoders (Strip, BPEDecoder) panic in `tokenizers` on an empty
    # list; libllm defines that decode as "".
    if not ids:
        return ""
    return tok.decode(ids, skip_special_tokens=skip)


def case(tok, text, raw=None):
    enc = tok.encode(text, add_special_tokens=False).ids
    enc_s = tok.encode(text, add_special_tokens=True).ids
    c = {}
    if raw is not None:
        c["hex"] = raw.hex()
    else:
        c["text"] = text
    c["ids"] = enc
    c["ids_special"] = enc_s
    c["decoded"] = decode(tok, enc, False)
    c["decoded_special"] = decode(tok, enc_s, False)
    c["decoded_skip"] = decode(tok, enc_s, True)
    return c


def random_id_cases(tok, count=40, seed=1234):
    """Decode-only cases: random id sequences (biased to byte tokens, special
    tokens and short pieces), so decoders and the streaming detokenizer meet
    invalid UTF-8, split characters and odd token orders."""
    import random
    rng = random.Random(seed)
    vocab = tok.get_vocab(with_added_tokens=True)
    ids = sorted(vocab.values())
    byteish = sorted(i for t, i in vocab.items() if t.startswith("<0x") or len(t) == 1)
    special = sorted(tok.get_added_tokens_decoder().keys())
    out = []
    for _ in range(count):
        n = rng.randint(1, 24)
        seq = []
        for _ in range(n):
            r = rng.random()
            pool = byteish if r < 0.5 and byteish else special if r < 0.6 and special else ids
            seq.append(rng.choice(pool))
        try:
            c = {"ids_only": True, "ids": seq, "decoded": decode(tok, seq, False),
                 "decoded_skip": decode(tok, seq, True)}
        except BaseException:  # decoders that panic on odd input are left out
            continue
        out.append(c)
    return out


def write_cases(path, tok, extra_texts):
    texts = list(extra_texts) + CORPUS + [long_text()]
    seen = set()
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            if t in seen:
                continue
            seen.add(t)
            try:
                c = case(tok, t)
            except BaseException:
                # `tokenizers` panics (e.g. Strip on a token made only of the
                # stripped character): there is no answer to compare with
                print("  left out (tokenizers panics):", repr(t[:40]), file=sys.stderr)
                continue
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
        for raw in INVALID_BYTES:
            f.write(json.dumps(case(tok, raw.decode("utf-8", "replace"), raw),
                               ensure_ascii=False) + "\n")
        for c in random_id_cases(tok):
            f.write(json.dumps(c, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", default=os.path.join(HERE, "real"))
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    data = os.path.join(HERE, "data")
    cases = os.path.join(HERE, "cases")
    os.makedirs(cases, exist_ok=True)

    def save(name, j):
        d = os.path.join(data, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=1)
            f.write("\n")

    def committed(name):
        with open(os.path.join(data, name, "tokenizer.json"), encoding="utf-8") as f:
            return json.load(f)

    retrain = args.retrain or not os.path.exists(os.path.join(data, "tiny-l3", "tokenizer.json"))
    if retrain:
        for name, j in build_trained().items():
            save(name, j)
    for name, j in build_variants(committed("tiny-spm"), committed("tiny-l3"),
                                  committed("tiny-classic")).items():
        if retrain or not os.path.exists(os.path.join(data, name, "tokenizer.json")):
            save(name, j)
    names = sorted(os.listdir(data))
    for name in names:
        tok = Tokenizer.from_file(os.path.join(data, name, "tokenizer.json"))
        write_cases(os.path.join(cases, name + ".jsonl"), tok, [])
        print("wrote", name, file=sys.stderr)
    for name in SHARED_NAMES:
        p = os.path.join(args.real, name)
        text = subprocess.run(["zstd", "-dc", os.path.join(p, "tokenizer.json.zst")],
                              check=True, capture_output=True).stdout.decode("utf-8")
        tok = Tokenizer.from_str(text)
        extra = [json.loads(l)["text"] for l in open(os.path.join(p, "cases.jsonl"),
                                                      encoding="utf-8")]
        write_cases(os.path.join(cases, name + ".jsonl"), tok, extra)
        print("wrote", name, file=sys.stderr)


if __name__ == "__main__":
    main()
