#!/bin/bash
# test_convert.sh - bit-exact conversion: every canonical tensor of the
# artifact equals its HF source(s) (check-convert), through a file and a
# pipe, raw and zstd-compressed, and file and pipe outputs are identical.
#   test_convert.sh fixtures   every tests/fixtures/*/ holding model*.safetensors
#                              (exit 77 while there are none)
#   test_convert.sh generated  checkpoints written by mkckpt: Llama GQA in one
#                              file and in 3 shards, Qwen2-style (qkv biases, tied)
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
CONV=$B/cmd/llm-convert
CHECK=$B/tests/golden/check-convert
T=$(mktemp -d "${TMPDIR:-/tmp}/test-golden-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0 n=0

run() { # what, command...
    local what=$1
    shift
    if "$@" >"$T/log" 2>&1; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        sed 's/^/    /' "$T/log"
        fails=$((fails + 1))
    fi
}

check_dir() {
    local d=$1 name
    name=$(basename "$d")
    n=$((n + 1))
    run "$name: convert to a file" "$CONV" -q "$d" -o "$T/a.llm"
    run "$name: file bit-exact" "$CHECK" "$d" "$T/a.llm"
    run "$name: pipe bit-exact" bash -c "'$CONV' -q '$d' | '$CHECK' '$d' -"
    run "$name: pipe output == file output" bash -c "'$CONV' -q '$d' | cmp - '$T/a.llm'"
    run "$name: compressed file bit-exact" bash -c \
        "'$CONV' -q --compress '$d' -o '$T/z.llm' && '$CHECK' '$d' '$T/z.llm'"
    run "$name: compressed pipe bit-exact" bash -c "'$CONV' -q --compress=7 '$d' | '$CHECK' '$d' -"
}

case "${1:-fixtures}" in
fixtures)
    for d in "$S"/tests/fixtures/*/; do
        d=${d%/}
        ls "$d"/model*.safetensors >/dev/null 2>&1 || continue
        # check-convert spells the HF names of the Llama family only (also as the
        # language model of a multimodal checkpoint: mistral3-mm); the
        # other families' conversions are checked through their logits
        # against transformers' (golden-cpu)
        if ! grep -Eq '"model_type": *"(llama|mistral|qwen2)"' "$d/config.json"; then
            echo "not here: $(basename "$d") (not a Llama-family checkpoint; golden-cpu checks it)"
            continue
        fi
        check_dir "$d"
    done
    if [ "$n" = 0 ]; then
        echo "skip: no checkpoints under $S/tests/fixtures yet"
        exit 77
    fi
    ;;
generated)
    MK=$B/tests/golden/mkckpt
    cat >"$T/llama.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
 "num_key_value_heads": 2, "vocab_size": 200, "max_position_embeddings": 128,
 "rms_norm_eps": 1e-05, "hidden_act": "silu", "tie_word_embeddings": false,
 "torch_dtype": "float16"}
JSON
    cat >"$T/qwen2.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
 "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "vocab_size": 160, "max_position_embeddings": 128,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "hidden_act": "silu",
 "tie_word_embeddings": true, "use_sliding_window": false, "torch_dtype": "bfloat16"}
JSON
    "$MK" --tokenizer "$T/llama.json" "$T/llama-gqa" 2>/dev/null &&
        "$MK" --shards 3 "$T/llama.json" "$T/llama-gqa-sharded" 2>/dev/null &&
        "$MK" --tokenizer "$T/qwen2.json" "$T/qwen2-tied-bias" 2>/dev/null ||
        { echo "FAIL: mkckpt"; exit 1; }
    for d in "$T/llama-gqa" "$T/llama-gqa-sharded" "$T/qwen2-tied-bias"; do check_dir "$d"; done
    # the checker itself must notice a wrong conversion: other weights, same shapes
    "$MK" --seed 9 "$T/llama.json" "$T/llama-other" 2>/dev/null
    "$CONV" -q "$T/llama-other" -o "$T/other.llm"
    if "$CHECK" "$T/llama-gqa" "$T/other.llm" >"$T/log" 2>&1 ||
        ! grep -q "FAIL: 'transformer.vocab_embedding.weight': byte" "$T/log"; then
        echo "FAIL: check-convert accepted an artifact of other weights"
        fails=$((fails + 1))
    else
        echo "ok: check-convert rejects other weights: $(grep -m1 "FAIL: 'transformer" "$T/log")"
    fi
    ;;
*)
    echo "usage: test_convert.sh fixtures|generated" >&2
    exit 2
    ;;
esac
echo "$n checkpoint(s), $fails failure(s)"
[ "$fails" = 0 ]
