#!/bin/bash
# test_tools.sh - what every llm-* tool does the same way, checked over all
# the tools built in cmd/:
#   - --version prints one line "TOOL VERSION (commit HASH)", the same
#     version and commit in every tool; --help exits 0 with the usage on
#     standard output and nothing on standard error.
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

echo "$fails failed"
[ "$fails" = 0 ]
