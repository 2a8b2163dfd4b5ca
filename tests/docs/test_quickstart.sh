#!/bin/bash
# test_quickstart.sh - the README's quick start does what it says: its main
# command, `build/cmd/llm-run lib/data/default.llm lib/data/prompts.jsonl`,
# is still the one the README names, and run here on the CPU it answers
# every bundled prompt with the committed expected answers
# (quickstart-answers.jsonl, checked by check-answers).
#
# The expected answers were written by the tool itself:
#   build/cmd/llm-run --device cpu --ordered lib/data/default.llm \
#       lib/data/prompts.jsonl -o tests/docs/quickstart-answers.jsonl
# Rewrite them that way only when the model, the prompts or the engine's
# arithmetic changed on purpose, and say so in the commit.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/test-quickstart-XXXXXX")
trap 'rm -rf "$T"' EXIT
CMD='build/cmd/llm-run lib/data/default.llm lib/data/prompts.jsonl'
fails=0

# 1. the README's quick start section names this exact command
awk '/^## /{q = ($0 == "## Quick start")} q' "$S/README.md" >"$T/quickstart.md"
if [ ! -s "$T/quickstart.md" ]; then
    echo "FAIL: README.md has no '## Quick start' section"
    fails=$((fails + 1))
elif grep -qF -- "$CMD" "$T/quickstart.md"; then
    echo "ok: the README's quick start runs '$CMD'"
else
    echo "FAIL: the README's quick start no longer runs '$CMD'; update this test with it"
    fails=$((fails + 1))
fi

# 2. that command, on the CPU, from the source folder as the README runs it
cd "$S" || exit 1
if "$B/cmd/llm-run" --device cpu lib/data/default.llm lib/data/prompts.jsonl \
    >"$T/answers.jsonl" 2>"$T/err"; then
    echo "ok: llm-run exited 0: $(tail -1 "$T/err")"
else
    echo "FAIL: llm-run exited $?:"
    sed 's/^/    /' "$T/err"
    fails=$((fails + 1))
fi
if "$B/tests/docs/check-answers" lib/data/prompts.jsonl "$S/tests/docs/quickstart-answers.jsonl" \
    "$T/answers.jsonl"; then
    echo "ok: answers equal tests/docs/quickstart-answers.jsonl"
else
    fails=$((fails + 1))
fi
echo "$fails failed"
[ "$fails" = 0 ]
