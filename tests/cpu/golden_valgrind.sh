#!/bin/bash
# golden_valgrind.sh - the golden path under valgrind's memcheck (suite
# slow): llm-convert of three fixtures (sharded f32, bf16 with biases and
# tied embeddings, f16 with a sliding window), golden-cpu on each (every
# step's logits against transformers'), and llm-run answering the fixture's
# recorded greedy requests, checked by run-golden.  Any invalid read or
# write, use of uninitialised memory, or definite leak fails the test, as
# does a wrong answer.  Not registered in sanitizer builds (ASan and
# valgrind do not mix); fails when valgrind is not installed (.ci/deps.sh
# installs it).
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
for f in llama3-f32-sharded qwen2-bf16 mistral-f16; do
    d=$S/tests/fixtures/$f
    step "$f: llm-convert" "$B/cmd/llm-convert" -q "$d" -o "$T/$f.llm"
    step "$f: golden-cpu" "$B/tests/cpu/golden-cpu" "$d" "$T/$f.llm"
done
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
