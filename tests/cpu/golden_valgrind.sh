#!/bin/bash
# golden_valgrind.sh - the golden path under valgrind's memcheck (suite
# slow): llm-convert of the sharded fixture, golden-cpu on three fixtures
# (sharded f32, bf16 with biases and tied embeddings, f16 with a sliding
# window; every step's logits against transformers'), and llm-run
# answering one fixture's recorded greedy requests, checked by run-golden.
# Any invalid read or write, use of uninitialised memory, or definite leak
# fails the test, as does a wrong answer.  Three valgrind runs in all: each
# start costs about 35 s in a CUDA build (valgrind reads cuBLASLt's
# symbols).  Not registered in sanitizer builds (ASan and valgrind do not
# mix); fails when valgrind is not installed (.ci/deps.sh installs it).
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/golden-valgrind-XXXXXX")
trap 'rm -rf "$T"' EXIT
if ! command -v valgrind >/dev/null; then
    echo "FAIL: valgrind is not installed (sh .ci/deps.sh installs it)"
    exit 1
fi
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=yes)
fails=0
step() { # what, command...
    local what=$1
    shift
    if "${VG[@]}" "$@" >"$T/out" 2>"$T/err"; then
        echo "ok: $what: $(tail -1 "$T/out")"
    else
        echo "FAIL: $what (exit $?)"
        sed 's/^/    /' "$T/out" "$T/err" | head -60
        fails=$((fails + 1))
    fi
}
F=$S/tests/fixtures
step "llama3-f32-sharded: llm-convert" "$B/cmd/llm-convert" -q "$F/llama3-f32-sharded" \
    -o "$T/llama3-f32-sharded.llm"
for f in qwen2-bf16 mistral-f16; do
    "$B/cmd/llm-convert" -q "$F/$f" -o "$T/$f.llm" || { echo "FAIL: llm-convert of $f"; exit 1; }
done
step "golden-cpu on three fixtures" "$B/tests/cpu/golden-cpu" \
    "$F/llama3-f32-sharded" "$T/llama3-f32-sharded.llm" "$F/qwen2-bf16" "$T/qwen2-bf16.llm" \
    "$F/mistral-f16" "$T/mistral-f16.llm"
grep -c 'of 96 steps checked' "$T/out" | grep -qx 3 || {
    echo "FAIL: golden-cpu did not check 96 steps of each of the three fixtures"
    fails=$((fails + 1))
}
f=qwen2-bf16
"$B/tests/engine/run-golden" input "$S/tests/fixtures/$f/reference.json" >"$T/gold.jsonl"
step "$f: llm-run on the recorded greedy requests" "$B/cmd/llm-run" -q --device cpu \
    --max-batch-tokens 16 --block-size 4 "$T/$f.llm" "$T/gold.jsonl" -o "$T/gold.out"
if "$B/tests/engine/run-golden" check "$S/tests/fixtures/$f/reference.json" "$T/gold.out" \
    >"$T/check" 2>&1; then
    echo "ok: $f: llm-run answers: $(tail -1 "$T/check")"
else
    echo "FAIL: $f: llm-run answers: $(grep -m1 FAIL "$T/check")"
    fails=$((fails + 1))
fi
echo "$fails failed"
[ "$fails" = 0 ]
