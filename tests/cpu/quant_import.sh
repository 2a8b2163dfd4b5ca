#!/bin/bash
# quant_import.sh - llm-convert's importers of pre-quantized checkpoints
# (tests/fixtures/quant, written by tests/fixtures/gen_quant_fixtures.py):
# every checkpoint converts, and the CPU backend's logits equal the reference
# (transformers') within the fixture's bound (golden-cpu); the artifact's
# quantization section is the one llm-quantize writes for the scheme; ModelOpt's
# FP8 export gives the same tensors as compressed-tensors' of the same values;
# GPTQ act-order is stored with an input permutation: its section says
# act_order, both backends list it, and every weight equals the
# checkpoint's dequantized one (actorder-layout, recomputed independently);
# block-wise FP8 is expanded to bf16; every broken checkpoint (quant/bad/*) is
# refused in one line holding expect.txt, with no output file left behind.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
Q=$S/tests/fixtures/quant
CONV=$B/cmd/llm-convert
T=$(mktemp -d "${TMPDIR:-/tmp}/quant-import-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

declare -A ALGO=([fp8-static]=FP8 [fp8-modelopt]=FP8 [fp8-dynamic]=FP8_PER_CHANNEL_PER_TOKEN
                 [awq]=W4A16_AWQ [gptq]=W4A16_GPTQ [gptq-8bit]=W8A16_GPTQ
                 [gptq-act-order]=W4A16_GPTQ [gptq-channel]=W4A16_GPTQ)
for name in fp8-static fp8-dynamic fp8-modelopt awq gptq gptq-8bit gptq-act-order gptq-channel; do
    d=$Q/$name
    n=$((n + 1))
    if ! "$CONV" -q "$d" -o "$T/$name.llm" 2>"$T/err"; then
        fail "$name: llm-convert: $(cat "$T/err")"
        continue
    fi
    "$B/tests/cpu/golden-cpu" "$d" "$T/$name.llm" || fail "$name: logits"
    "$B/cmd/llm-info" "$T/$name.llm" >"$T/info" 2>&1
    grep -q "\"quant_algo\":\"${ALGO[$name]}\"" "$T/info" ||
        fail "$name: quantization section is not ${ALGO[$name]}: $(grep quantization "$T/info")"
done
if [ -f "$T/gptq-act-order.llm" ]; then
    "$B/cmd/llm-info" "$T/gptq-act-order.llm" >"$T/info" 2>&1
    grep -q '"act_order":true' "$T/info" || fail "gptq-act-order: the section has no act_order"
    [ "$(grep -c 'i32 .*\.perm$' "$T/info")" = 15 ] ||
        fail "gptq-act-order: expected 15 perm tensors (5 linears x 3 layers)"
    grep -q 'runs on: cpu, cuda$' "$T/info" || fail "gptq-act-order: $(grep 'runs on' "$T/info")"
    "$B/tests/cpu/actorder-layout" "$Q/gptq-act-order/model.safetensors" \
        "$T/gptq-act-order.llm" 3 || fail "gptq-act-order: stored weights"
    # llm-shard: inputs split over ranks cannot follow a permutation (refused
    # by name); pipeline stages keep every weight whole
    if [ -x "$B/cmd/llm-shard" ]; then
        if "$B/cmd/llm-shard" --tp 2 "$T/gptq-act-order.llm" -o "$T/tp2" 2>"$T/err"; then
            fail "gptq-act-order: llm-shard --tp 2 split a permuted weight along its inputs"
        elif [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q "\.perm'.*permuted inputs" "$T/err"; then
            fail "gptq-act-order: llm-shard --tp 2: $(cat "$T/err")"
        fi
        "$B/cmd/llm-shard" -q --pp 3 "$T/gptq-act-order.llm" -o "$T/pp3" 2>"$T/err" &&
            "$B/cmd/llm-shard" -q --merge "$T/pp3" -o "$T/merged.llm" 2>>"$T/err" &&
            cmp -s "$T/merged.llm" "$T/gptq-act-order.llm" ||
            fail "gptq-act-order: llm-shard --pp 3 and --merge: $(cat "$T/err")"
    fi
    "$B/cmd/llm-info" "$T/gptq.llm" 2>&1 | grep -q 'act_order\|\.perm' &&
        fail "gptq: a permutation on a checkpoint without act-order"
fi
# 4-bit GPTQ with one group per channel (group_size -1): each weight's scales are one group
# of all its inputs ([1, out]), the section says -1; tensor parallelism would split that
# group and is refused by name, pipeline stages keep it whole
if [ -f "$T/gptq-channel.llm" ]; then
    "$B/cmd/llm-info" "$T/gptq-channel.llm" >"$T/info" 2>&1
    grep -q '"group_size":-1' "$T/info" || fail "gptq-channel: $(grep quantization "$T/info")"
    grep -q 'f32 *\[1, 192\].*attention.qkv.weights_scaling_factor' "$T/info" ||
        fail "gptq-channel: qkv scales are not one group [1, 192]"
    if [ -x "$B/cmd/llm-shard" ]; then
        if "$B/cmd/llm-shard" --tp 2 "$T/gptq-channel.llm" -o "$T/tp2c" 2>"$T/err"; then
            fail "gptq-channel: llm-shard --tp 2 split a one-group weight"
        elif [ "$(wc -l <"$T/err")" != 1 ] || ! grep -q "one group per channel" "$T/err"; then
            fail "gptq-channel: llm-shard --tp 2: $(cat "$T/err")"
        fi
        "$B/cmd/llm-shard" -q --pp 3 "$T/gptq-channel.llm" -o "$T/pp3c" 2>"$T/err" &&
            "$B/cmd/llm-shard" -q --merge "$T/pp3c" -o "$T/mergedc.llm" 2>>"$T/err" &&
            cmp -s "$T/mergedc.llm" "$T/gptq-channel.llm" ||
            fail "gptq-channel: llm-shard --pp 3 and --merge: $(cat "$T/err")"
    fi
fi
# ModelOpt and compressed-tensors, same values: the same tensors, byte for byte
if [ -f "$T/fp8-static.llm" ] && [ -f "$T/fp8-modelopt.llm" ]; then
    "$B/cmd/llm-info" "$T/fp8-static.llm" | grep transformer. >"$T/a"
    "$B/cmd/llm-info" "$T/fp8-modelopt.llm" | grep transformer. >"$T/b"
    cmp -s "$T/a" "$T/b" || fail "fp8-modelopt: tensors differ from fp8-static's"
    grep -q "attention.qkv.weights_scaling_factor *$" "$T/a" ||
        grep -q "f32 *\[192\].*attention.qkv.weights_scaling_factor" "$T/a" ||
        fail "fp8-static: q, k and v scales differ, the fused qkv needs one per row"
fi
# Block-wise FP8 (transformers' FineGrainedFP8: DeepSeek V3, Qwen3-FP8): no exact
# form in the artifact's fp8 formats, so the weights are expanded to bf16 (fp8 x
# block scale in fp32, rounded once); the logits are those of that bf16 model
n=$((n + 1))
if "$CONV" -q "$Q/fp8-block" -o "$T/fp8-block.llm" 2>"$T/err"; then
    "$B/tests/cpu/golden-cpu" "$Q/fp8-block" "$T/fp8-block.llm" || fail "fp8-block: logits"
    "$B/cmd/llm-info" "$T/fp8-block.llm" >"$T/info" 2>&1
    grep -q '"quant_algo"' "$T/info" && fail "fp8-block: a quantization section on bf16 weights"
    [ "$(grep -c 'bf16 .*\(attention.qkv\|attention.dense\|mlp\.[a-z]*\)\.weight$' "$T/info")" = 15 ] ||
        fail "fp8-block: expected 15 bf16 linear weights (5 x 3 layers)"
    grep -q 'weight_scale_inv' "$T/info" && fail "fp8-block: a block scale was copied"
else
    fail "fp8-block: llm-convert: $(cat "$T/err")"
fi
for d in "$Q"/bad/*/; do
    d=${d%/}
    name=bad/$(basename "$d")
    n=$((n + 1))
    want=$(cat "$d/expect.txt")
    if "$CONV" -q "$d" -o "$T/bad.llm" 2>"$T/err"; then
        fail "$name: converted, expected a refusal holding '$want'"
    elif [ "$(wc -l <"$T/err")" != 1 ] || ! grep -qF -- "$want" "$T/err"; then
        fail "$name: expected one line holding '$want', got: $(cat "$T/err")"
    elif [ -e "$T/bad.llm" ] || ls "$T"/.*tmp* >/dev/null 2>&1; then
        fail "$name: an output file was left behind"
    else
        echo "ok: $name: $(cat "$T/err")"
    fi
    rm -f "$T/bad.llm"
done
echo "$n checkpoints, $fails failed"
[ "$fails" = 0 ]
