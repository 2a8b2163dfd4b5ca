#!/bin/bash
# random_model.sh - a model opened as "random:CONFIG.json" (weights made by
# the backend: on the GPU by a kernel, never on the host) runs exactly as
# the artifact `llm-convert --random CONFIG.json` writes: llm-run's greedy
# and sampled answers to the same token-id prompts, with their log-probabilities,
# are byte-identical, for fixtures
# with biases, tied and untied heads, norms of every kind and experts
# (quantized ones too).
#
#   tests/gpu/random_model.sh BIN_DIR    (llm-convert and llm-run there;
#                                        LLM_DEVICE=cpu runs it on the CPU)
set -u
B=${1:?usage: random_model.sh BIN_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEV=${LLM_DEVICE:-cuda}
T=$(mktemp -d "${TMPDIR:-/tmp}/random-model-XXXXXX")
trap 'rm -rf "$T"' EXIT
# greedy and sampled (temperature 1, seeded), each with the top-5 log-probabilities
# printed: a different weight anywhere changes the numbers even where it leaves
# the tokens alone
for i in 1 2 3 4; do
    printf '{"input_ids": [%d, %d, 7, 11, 13, %d], "max_tokens": 12, "temperature": %d, "seed": %d, "logprobs": 5}\n' \
        $((i * 3)) $((i + 40)) $((i * 17)) $((i % 2)) "$i"
done > "$T/p.jsonl"
n=0 fails=0
# same LABEL SPEC: the artifact `llm-convert --random SPEC` writes and
# random:SPEC give the same 4 answers (int4 in the plain layout on both
# sides: the tile layout is made from host bytes only)
same() {
    n=$((n + 1))
    if ! "$B/llm-convert" -q --random "$2" -o "$T/a.llm" 2>"$T/err" ||
        ! LLM_CUDA_QTILE=0 "$B/llm-run" -q --device "$DEV" "$T/a.llm" "$T/p.jsonl" >"$T/a.out" 2>>"$T/err" ||
        ! LLM_CUDA_QTILE=0 "$B/llm-run" -q --device "$DEV" "random:$2" "$T/p.jsonl" >"$T/b.out" \
            2>>"$T/err"; then
        echo "FAIL $1: $(head -c 300 "$T/err")"
        fails=$((fails + 1))
    elif [ "$(wc -l < "$T/a.out")" -ne 4 ] || ! cmp -s "$T/a.out" "$T/b.out"; then
        echo "FAIL $1: answers differ"
        diff "$T/a.out" "$T/b.out" | head -4
        fails=$((fails + 1))
    else
        echo "ok $1: 4 of 4 answers identical"
    fi
}
for f in gpt2 bloom opt-350m starcoder2 gemma2 falcon-40b mixtral qwen3-moe; do
    same "$f" "$ROOT/tests/fixtures/$f/config.json"
done
# quantized: random:CONFIG.json:MODE (codes made on the GPU) = its artifact
for mode in fp8 fp8-pc int8-sq int8-sq,act=static w8a16 w4a16,group-size=32 int4-awq,group-size=32 \
    fp8,kv=fp8 kv=int8; do
    same "llama2 $mode" "$ROOT/tests/fixtures/llama2-f32/config.json:$mode"
done
# quantized experts: each expert's codes made on the GPU from its place in the stack
for mode in fp8 int8-sq w4a16,group-size=32; do
    same "mixtral $mode" "$ROOT/tests/fixtures/mixtral/config.json:$mode"
done
# bad configs: one line naming the file, exit 1, for llm-run and llm-bench alike
printf '{"architectures": ["NoSuchForCausalLM"], "model_type": "nosuch"}' > "$T/bad.json"
for spec in "random:$T/missing.json" "random:$T/bad.json"; do
    for tool in "llm-run -q --device $DEV" "llm-bench throughput --device $DEV --num-requests 1"; do
        n=$((n + 1))
        set -- $tool
        t=$1
        shift
        if [ "$t" = llm-run ]; then
            "$B/$t" "$@" "$spec" "$T/p.jsonl"
        else
            "$B/$t" "$@" "$spec"
        fi >"$T/out" 2>"$T/err"
        rc=$?
        f=${spec#random:}
        if [ "$rc" = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] && grep -qF "$f" "$T/err" &&
            grep -q "^$t: " "$T/err"; then
            echo "ok $t $(basename "$f"): $(cat "$T/err")"
        else
            echo "FAIL $t $(basename "$f"): exit $rc: $(head -c 300 "$T/err")"
            fails=$((fails + 1))
        fi
    done
done
echo "random models on $DEV: $n checks (8 fixtures, 9 quantization modes and 3 with quantized experts answer as their converted artifact; 4 bad configs refused in one line), $fails failed"
[ "$fails" -eq 0 ]
