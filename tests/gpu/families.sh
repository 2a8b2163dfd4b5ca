#!/bin/bash
# families.sh - every family's tiny checkpoint (tests/fixtures, f32) on the
# CUDA backend against Hugging Face transformers, through the tools a user
# runs: llm-convert, llm-build --dtype f32, then llm-run on the recorded
# prompts (text and ids, greedy), checked by run-golden: every generated
# token and the decoded text equal transformers'.  The same artifact run
# by llm-run alone (bf16 compute) is reported beside it.  A fixture whose structure the CUDA
# backend does not run must be refused by name, pointing at --device cpu.
#
#   tests/gpu/families.sh BIN_DIR    (llm-convert, llm-build, llm-run, run-golden there;
#                                    LLM_DEVICE=cpu runs the same on the CPU)
set -u
B=${1:?usage: families.sh BIN_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/families-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 ok=0 refused=0 limited=0 fails=0
for d in "$ROOT"/tests/fixtures/*/; do
    d=${d%/}
    f=$(basename "$d")
    case $f in *-bf16 | *-f16 | *-sharded) continue ;; esac
    [ -f "$d/reference.json" ] || continue
    n=$((n + 1))
    if ! "$B/llm-convert" -q "$d" -o "$T/m.llm" 2>"$T/err"; then
        echo "FAIL $f: llm-convert: $(cat "$T/err")"
        fails=$((fails + 1))
        continue
    fi
    "$B/run-golden" input "$d/reference.json" >"$T/in.jsonl"
    # f32 on the GPU: an engine built in f32 (llm-run alone computes in bf16)
    model=$T/m.llm
    if [ "${LLM_DEVICE:-cuda}" = cuda ]; then
        if ! "$B/llm-build" -q --dtype f32 --max-seq-len 256 "$T/m.llm" -o "$T/m.engine" \
            2>"$T/err"; then
            if grep -q "the cuda backend cannot run this .* (the cpu backend runs it: --device cpu)" \
                "$T/err"; then
                echo "refused $f: $(head -1 "$T/err")"
                refused=$((refused + 1))
            elif grep -q "this model has dynamic rope positions up to" "$T/err"; then
                # an engine fixes its dynamic-rope table at max_position_embeddings;
                # the plain backend runs past it (test_gpu_forward checks that)
                echo "limit $f: $(head -1 "$T/err")"
                limited=$((limited + 1))
            else
                echo "FAIL $f: llm-build: $(head -3 "$T/err")"
                fails=$((fails + 1))
            fi
            continue
        fi
        model=$T/m.engine
    fi
    # (--max-seq-len: rope-dynamic runs its long prompt past its max_position_embeddings)
    if ! "$B/llm-run" -q --device "${LLM_DEVICE:-cuda}" --max-seq-len 256 "$model" "$T/in.jsonl" \
        -o "$T/out.jsonl" 2>"$T/err"; then
        echo "FAIL $f: llm-run: $(head -3 "$T/err")"
        fails=$((fails + 1))
        continue
    fi
    if "$B/run-golden" check "$d/reference.json" "$T/out.jsonl" >"$T/log" 2>&1; then
        line="ok $f: f32 $(tail -1 "$T/log")"
        ok=$((ok + 1))
    else
        echo "FAIL $f: f32: $(grep -m1 FAIL "$T/log")"
        fails=$((fails + 1))
        continue
    fi
    # bf16 (llm-run's default on the GPU): reported, not required to match
    # token for token (a near-tie may flip and the continuation differs)
    if [ "${LLM_DEVICE:-cuda}" = cuda ] &&
        "$B/llm-run" -q --device cuda --max-seq-len 256 "$T/m.llm" "$T/in.jsonl" \
            -o "$T/out16.jsonl" 2>"$T/err"; then
        "$B/run-golden" check "$d/reference.json" "$T/out16.jsonl" >"$T/log16" 2>&1
        line="$line; bf16: $(tail -1 "$T/log16" | cut -c1-70)"
    fi
    echo "$line"
done
echo "families: $n fixtures, $ok equal to transformers on ${LLM_DEVICE:-cuda}, $refused refused by name, $limited beyond an engine's limits, $fails failed"
[ "$fails" = 0 ] && [ "$n" -gt 0 ]
