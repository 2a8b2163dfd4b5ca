#!/bin/bash
# random_model.sh - a model opened as "random:CONFIG.json" (weights made by
# the backend: on the GPU by a kernel, never on the host) runs exactly as
# the artifact `llm-convert --random CONFIG.json` writes: llm-run's greedy
# and sampled answers to the same token-id prompts, with their log-probabilities,
# are byte-identical, for fixtures
# with biases, tied and untied heads, norms of every kind and experts.
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
for f in gpt2 bloom opt-350m starcoder2 gemma2 falcon-40b mixtral qwen3-moe; do
    cfg=$ROOT/tests/fixtures/$f/config.json
    n=$((n + 1))
    if ! "$B/llm-convert" -q --random "$cfg" -o "$T/a.llm" 2>"$T/err" ||
        ! "$B/llm-run" -q --device "$DEV" "$T/a.llm" "$T/p.jsonl" >"$T/a.out" 2>>"$T/err" ||
        ! "$B/llm-run" -q --device "$DEV" "random:$cfg" "$T/p.jsonl" >"$T/b.out" 2>>"$T/err"; then
        echo "FAIL $f: $(head -c 300 "$T/err")"
        fails=$((fails + 1))
    elif [ "$(wc -l < "$T/a.out")" -ne 4 ] || ! cmp -s "$T/a.out" "$T/b.out"; then
        echo "FAIL $f: answers differ"
        diff "$T/a.out" "$T/b.out" | head -4
        fails=$((fails + 1))
    else
        echo "ok $f: 4 of 4 answers identical"
    fi
done
# quantized: random:CONFIG.json:MODE (codes made on the GPU) = the artifact
# `llm-convert --random CONFIG.json:MODE` writes (int4 in the plain layout on
# both sides: the tile layout is made from host bytes only)
for mode in fp8 fp8-pc int8-sq int8-sq,act=static w8a16 w4a16,group-size=32 int4-awq,group-size=32; do
    cfg=$ROOT/tests/fixtures/llama2-f32/config.json
    n=$((n + 1))
    if ! "$B/llm-convert" -q --random "$cfg:$mode" -o "$T/a.llm" 2>"$T/err" ||
        ! LLM_CUDA_QTILE=0 "$B/llm-run" -q --device "$DEV" "$T/a.llm" "$T/p.jsonl" >"$T/a.out" 2>>"$T/err" ||
        ! LLM_CUDA_QTILE=0 "$B/llm-run" -q --device "$DEV" "random:$cfg:$mode" "$T/p.jsonl" \
            >"$T/b.out" 2>>"$T/err"; then
        echo "FAIL llama2 $mode: $(head -c 300 "$T/err")"
        fails=$((fails + 1))
    elif [ "$(wc -l < "$T/a.out")" -ne 4 ] || ! cmp -s "$T/a.out" "$T/b.out"; then
        echo "FAIL llama2 $mode: answers differ"
        diff "$T/a.out" "$T/b.out" | head -4
        fails=$((fails + 1))
    else
        echo "ok llama2 $mode: 4 of 4 answers identical"
    fi
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
echo "random models on $DEV: $n checks (8 fixtures answer as their converted artifact; 4 bad configs refused in one line), $fails failed"
[ "$fails" -eq 0 ]
