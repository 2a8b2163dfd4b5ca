#!/bin/bash
# golden_cpu.sh - convert every tests/fixtures/*/ checkpoint with llm-convert and
# compare the CPU backend's logits and greedy tokens with transformers'
# (golden-cpu).  Exit 77 when there are no fixtures.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/golden-cpu-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 fails=0
for d in "$S"/tests/fixtures/*/; do
    d=${d%/}
    [ -f "$d/reference.json" ] && [ -f "$d/reference.safetensors" ] || continue
    n=$((n + 1))
    if ! "$B/cmd/llm-convert" -q "$d" -o "$T/m.llm" 2>"$T/err"; then
        echo "FAIL: $(basename "$d"): llm-convert: $(cat "$T/err")"
        fails=$((fails + 1))
        continue
    fi
    "$B/tests/cpu/golden-cpu" "$d" "$T/m.llm" || fails=$((fails + 1))
done
if [ "$n" = 0 ]; then
    echo "skip: no fixtures under $S/tests/fixtures"
    exit 77
fi
echo "$n fixtures, $fails failed"
[ "$fails" = 0 ]
