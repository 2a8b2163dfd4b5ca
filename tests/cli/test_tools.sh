#!/bin/bash
# test_tools.sh - what every llm-* tool does the same way, checked over all
# the tools built in cmd/:
#   - --version prints one line "TOOL VERSION (commit HASH)", the same
#     version and commit in every tool; --help exits 0 with the usage on
#     standard output and nothing on standard error;
#   - an artifact with one byte of one tensor changed is refused by every
#     tool that loads weights (llm-run, llm-bench, llm-build; from a file
#     and from a pipe): exit 1, one line naming the file and the tensor, no
#     output file; --no-verify runs it.
# Each check prints what it compared; the script exits 1 if any failed.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/test-tools-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

tools=()
for f in "$B"/cmd/llm-*; do
    [ -f "$f" ] && [ -x "$f" ] && tools+=("$(basename "$f")")
done
[ ${#tools[@]} -ge 5 ] && ok "tools: ${tools[*]}" || fail "expected at least 5 tools, found: ${tools[*]}"

# ---- --version and --help ---------------------------------------------------------
first=""
for t in "${tools[@]}"; do
    "$B/cmd/$t" --version >"$T/v" 2>"$T/v.err"
    rc=$?
    line=$(head -1 "$T/v")
    rest=${line#"$t "}
    if [ $rc = 0 ] && [ "$(grep -c '' "$T/v")" = 1 ] && [ ! -s "$T/v.err" ] \
        && echo "$line" | grep -Eq "^$t [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]+(-dirty)?\)$"; then
        ok "$t --version: $line"
    else
        fail "$t --version: exit $rc, '$(cat "$T/v" "$T/v.err")'"
    fi
    [ -z "$first" ] && first=$rest
    [ "$rest" = "$first" ] || fail "$t --version says '$rest', ${tools[0]} says '$first'"
    "$B/cmd/$t" --help >"$T/h" 2>"$T/h.err"
    rc=$?
    [ $rc = 0 ] && head -1 "$T/h" | grep -q "^Usage: $t " && [ ! -s "$T/h.err" ] \
        && ok "$t --help: usage on standard output, exit 0" || fail "$t --help: exit $rc"
done

# ---- a corrupt tensor -----------------------------------------------------------
DEF=$S/lib/data/default.llm
cp "$DEF" "$T/bad.llm"
# one byte in the middle of the data of the last layer's mlp.proj weight
read -r name off size < <("$B/cmd/llm-info" --json "$DEF" | python3 -c '
import json, sys
t = [x for x in json.load(sys.stdin)["tensors"] if x["name"].endswith("mlp.proj.weight")][-1]
print(t["name"], t["offset"], t["bytes"])')
at=$((off + 256 + size / 2)) # past the record header (under 256 bytes with its padding)
printf "$(printf '\\%03o' $(( $(od -An -tu1 -j "$at" -N1 "$T/bad.llm") ^ 1 )))" \
    | dd of="$T/bad.llm" bs=1 seek="$at" conv=notrunc status=none
cmp -s "$DEF" "$T/bad.llm" && fail "the byte at $at did not change"
"$B/cmd/llm-info" --verify --no-tensors "$T/bad.llm" >/dev/null 2>&1 \
    && fail "llm-info --verify accepts the changed byte at $at"
echo '{"id": 1, "prompt": "hello", "max_tokens": 2}' >"$T/req.jsonl"
# refused CMD...: exit 1, one line naming the file and the tensor, no $T/out.*
refused() {
    local what=$1
    shift
    rm -f "$T"/out.*
    "$@" >"$T/stdout" 2>"$T/err"
    local rc=$?
    if [ $rc = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] \
        && grep -q "^llm-[a-z]*: '\([^']*bad.llm\|<stdin>\)': tensor '$name' checksum mismatch" "$T/err" \
        && ! ls "$T"/out.* "$T"/.out.* >/dev/null 2>&1; then
        ok "$what refuses the corrupt artifact: $(cat "$T/err")"
    else
        fail "$what: exit $rc, stderr: $(head -3 "$T/err"), outputs: $(ls "$T"/out.* "$T"/.out.* 2>/dev/null)"
    fi
}
RUNQ=(-q --device cpu --threads 1)
BENCHQ=(-q -t 1 --no-probe -r 1 -w 0 --num-requests 2 --input-len 4 --output-len 2)
refused "llm-run" "$B/cmd/llm-run" "${RUNQ[@]}" "$T/bad.llm" "$T/req.jsonl" -o "$T/out.jsonl"
refused "llm-run from a pipe" sh -c "cat '$T/bad.llm' | '$B/cmd/llm-run' ${RUNQ[*]} - '$T/req.jsonl' -o '$T/out.jsonl'"
refused "llm-bench" "$B/cmd/llm-bench" throughput "$T/bad.llm" "${BENCHQ[@]}" -o "$T/out.md"
refused "llm-build" "$B/cmd/llm-build" -q --arch sm_90 "$T/bad.llm" -o "$T/out.engine"
refused "llm-build from a pipe" sh -c "cat '$T/bad.llm' | '$B/cmd/llm-build' -q --arch sm_90 - -o '$T/out.engine'"
"$B/cmd/llm-run" "${RUNQ[@]}" --no-verify "$T/bad.llm" "$T/req.jsonl" -o "$T/out.jsonl" \
    && grep -q '"output_ids"' "$T/out.jsonl" && ok "llm-run --no-verify runs it" \
    || fail "llm-run --no-verify"
"$B/cmd/llm-bench" throughput "$T/bad.llm" "${BENCHQ[@]}" --no-verify -o "$T/out.md" \
    && [ -s "$T/out.md" ] && ok "llm-bench --no-verify runs it" || fail "llm-bench --no-verify"
"$B/cmd/llm-build" -q --arch sm_90 --no-verify "$T/bad.llm" -o "$T/out.engine" \
    && [ -s "$T/out.engine" ] && ok "llm-build --no-verify builds it" || fail "llm-build --no-verify"

echo "$fails failed"
[ "$fails" = 0 ]
