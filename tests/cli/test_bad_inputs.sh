#!/bin/bash
# test_bad_inputs.sh - llm-convert over the bad-input corpus (tests/formats/bad,
# one defective checkpoint folder per case, listed in cases.tsv with the
# expected error and a substring of its message).  For every case the tool
# must exit 1 with exactly one line "llm-convert: ..." that holds the
# expected substring and names the offending file, and leave no output file
# (nor a temporary) behind.  Exit 77 (skip) while the corpus does not exist.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
CONV=$B/cmd/llm-convert
BAD=$S/tests/formats/bad
if [ ! -f "$BAD/cases.tsv" ]; then
    echo "skip: no bad-input corpus ($BAD/cases.tsv)"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/test-bad-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0 n=0
while IFS=$'\t' read -r name code sub; do
    case "$name" in '#'* | '') continue ;; esac
    n=$((n + 1))
    "$CONV" -q "$BAD/$name" -o "$T/out.llm" >"$T/stdout" 2>"$T/err"
    rc=$?
    msg=$(head -1 "$T/err")
    why=""
    [ "$rc" = 1 ] || why="exit $rc, expected 1"
    [ -z "$why" ] && [ "$(grep -c '' "$T/err")" != 1 ] && why="$(grep -c '' "$T/err") lines on stderr"
    [ -z "$why" ] && case "$msg" in "llm-convert: "*) ;; *) why="no 'llm-convert: ' prefix" ;; esac
    [ -z "$why" ] && case "$msg" in *"$sub"*) ;; *) why="message lacks '$sub'" ;; esac
    [ -z "$why" ] && case "$msg" in *"$name"*) ;; *) why="message does not name a file of the case" ;; esac
    [ -z "$why" ] && [ -s "$T/stdout" ] && why="wrote to standard output"
    [ -z "$why" ] && [ -n "$(ls -A "$T")" ] && [ "$(ls -A "$T" | grep -cv '^stdout$\|^err$')" != 0 ] \
        && why="left $(ls -A "$T" | grep -v '^stdout$\|^err$' | tr '\n' ' ')behind"
    if [ -n "$why" ]; then
        echo "FAIL: $name ($code): $why: $msg"
        fails=$((fails + 1))
    else
        echo "ok: $name: $msg"
    fi
    rm -f "$T"/.out.llm.tmp-* "$T/out.llm"
done <"$BAD/cases.tsv"
echo "$n cases, $fails failed"
[ "$n" -gt 0 ] && [ "$fails" = 0 ]
