#!/bin/bash
# stress_llm_run.sh - llm-run's answers do not depend on timing: the
# preempting case of test_llm_run.sh (budget 7, 4 sequences, a 160 KiB KV
# pool of 4-token blocks) runs again and again while a CPU hog keeps every
# core busy, with the input arriving through a pipe at random delays, on 1
# and 2 threads, ordered and unordered.  Every run must give the reference
# answers (the default pool, read from a file) and the same number of
# preemptions as the first: the runner reads a line only when the engine
# has room for it, so the scheduler sees the same requests at the same
# steps however slowly they arrive.
#
# Usage: stress_llm_run.sh ROUNDS [INPUTS]
#   ROUNDS  stressed runs per input (default 4)
#   INPUTS  how many different inputs (gen_requests seeds 9, 10, ...; default 1)
# The default suite runs one input a few times; the slow suite many inputs.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
RUN=$B/cmd/llm-run
CONV=$B/cmd/llm-convert
FIX=$S/tests/fixtures
ROUNDS=${1:-4}
INPUTS=${2:-1}
T=$(mktemp -d "${TMPDIR:-/tmp}/stress-llm-run-XXXXXX")
hogs=()
cleanup() {
    for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=1700000000
fails=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

if [ ! -f "$FIX/llama2-f32/config.json" ]; then
    echo "skip: no fixtures in $FIX"
    exit 77
fi
"$CONV" -q "$FIX/llama2-f32" -o "$T/m.llm" || { echo "FAIL: llm-convert of llama2-f32"; exit 1; }
M=$T/m.llm
# shellcheck source=requests.sh
. "$S/tests/engine/requests.sh"

# one busy loop per core, for the whole test
ncpu=$(nproc 2>/dev/null || echo 2)
for ((k = 0; k < ncpu; k++)); do
    yes >/dev/null &
    hogs+=($!)
done
echo "$ncpu CPU hogs running; $INPUTS input(s), $ROUNDS stressed runs each"

# Feed a file line by line, pausing 0-90 ms before about one line in three.
slow_feed() {
    local line
    while IFS= read -r line; do
        [ $((RANDOM % 3)) = 0 ] && sleep "0.0$((RANDOM % 10))"
        printf '%s\n' "$line"
    done <"$1"
}

SMALL=(--device cpu --max-batch-tokens 7 --max-seqs 4 --block-size 4 --kv-cache 160K)
preempts() { grep -o '[0-9]* preemptions' "$1" | cut -d' ' -f1; }

for ((s = 9; s < 9 + INPUTS; s++)); do
    gen_requests "$s" 70 >"$T/in.jsonl"
    "$RUN" -q --device cpu --threads 2 "$M" "$T/in.jsonl" -o "$T/ref.jsonl" --ordered
    [ $? = 3 ] || { fail "seed $s: reference run failed"; continue; }
    sort "$T/ref.jsonl" >"$T/ref.sorted"
    "$RUN" "${SMALL[@]}" --threads 1 "$M" "$T/in.jsonl" -o "$T/f.jsonl" --ordered 2>"$T/f.err"
    p0=$(preempts "$T/f.err")
    if ! cmp -s "$T/f.jsonl" "$T/ref.jsonl"; then
        fail "seed $s: small pool from a file ($p0 preemptions): answers differ from the reference"
        continue
    fi
    bad=0
    counts=""
    for ((r = 1; r <= ROUNDS; r++)); do
        th=$((1 + r % 2))
        ord=""
        [ $((r % 3)) = 0 ] || ord=--ordered
        slow_feed "$T/in.jsonl" | "$RUN" "${SMALL[@]}" --threads "$th" $ord "$M" - \
            -o "$T/p.jsonl" 2>"$T/p.err"
        rc=$?
        p=$(preempts "$T/p.err")
        counts="$counts ${p:-?}"
        if [ $rc != 3 ]; then # 3: all answered, the input's bad lines by error lines
            fail "seed $s round $r: exit $rc: $(tail -1 "$T/p.err")"
            bad=1
        elif [ -n "$ord" ] && ! cmp -s "$T/p.jsonl" "$T/ref.jsonl"; then
            fail "seed $s round $r (--threads $th, ordered, pipe): answers differ"
            bad=1
        elif [ -z "$ord" ] && ! sort "$T/p.jsonl" | cmp -s - "$T/ref.sorted"; then
            fail "seed $s round $r (--threads $th, unordered, pipe): answers differ"
            bad=1
        elif [ "$p" != "$p0" ]; then
            fail "seed $s round $r (--threads $th, pipe): $p preemptions, $p0 from the file"
            bad=1
        fi
    done
    [ $bad = 0 ] && ok "seed $s: $ROUNDS loaded runs from a slow pipe, same answers as the" \
        "reference, $p0 preemptions every time (file:$p0, pipe:$counts)"
done

echo "$fails failed"
[ "$fails" = 0 ]
