#!/bin/bash
# stress_preempt.sh - the engine under memory pressure (suite slow): 600
# mixed requests (greedy and seeded sampling, n > 1, stop strings,
# min_tokens, lengths from 1 to 96 tokens) on a tiny real model (the
# llama2-f32 fixture), run once with a roomy KV pool as the reference and
# then under pools so small that requests are preempted and recomputed
# hundreds of times, with tiny step budgets, one thread, and --no-evict.
# Every run must give the same answers, byte for byte, as the reference
# (a token depends only on its request, never on the batch or on being
# recomputed), and the small pools must really have preempted.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
RUN=$B/cmd/llm-run
FIX=$S/tests/fixtures/llama2-f32
T=$(mktemp -d "${TMPDIR:-/tmp}/stress-preempt-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
"$B/cmd/llm-convert" -q "$FIX" -o "$T/m.llm" || { echo "FAIL: llm-convert of $FIX"; exit 1; }
M=$T/m.llm
export OMP_WAIT_POLICY=passive # spinning threads starve the other tests running beside it

words=(the quick brown fox jumps over a lazy dog while seven small birds sing loudly at dawn
    and every river runs into one quiet sea under grey skies)
RANDOM=1234
for i in $(seq 1 600); do
    p=""
    nw=$((1 + RANDOM % 24)) # here, not inside $(...): a subshell reseeds RANDOM
    for _ in $(seq 1 $nw); do p="$p ${words[RANDOM % ${#words[@]}]}"; done
    mt=$((1 + RANDOM % 96))
    case $((i % 6)) in
    0) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"n\": 2, \"temperature\": 0.9, \"seed\": $i}" ;;
    1) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"temperature\": 0.8, \"top_p\": 0.9, \"seed\": $i}" ;;
    2) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"stop\": [\"the\", \"ng\"]}" ;;
    3) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"min_tokens\": $((mt / 2)), \"repetition_penalty\": 1.2}" ;;
    4) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"top_k\": 8, \"temperature\": 1.1, \"seed\": 7}" ;;
    *) echo "{\"id\": \"$i\", \"prompt\": \"$p\", \"max_tokens\": $mt}" ;;
    esac
done >"$T/in.jsonl"
n_req=$(grep -c . "$T/in.jsonl")

"$RUN" --device cpu --threads 2 --ordered "$M" "$T/in.jsonl" -o "$T/ref.jsonl" 2>"$T/ref.err" \
    || { echo "FAIL: reference run: $(cat "$T/ref.err")"; exit 1; }
n_ans=$(grep -c '' "$T/ref.jsonl")
errs=$(grep -c '"error"' "$T/ref.jsonl")
gen=$(grep -o '[0-9]* generated tokens' "$T/ref.err" | cut -d' ' -f1)
[ "$n_ans" = "$n_req" ] && [ "$errs" = 0 ] \
    && ok "reference: $n_ans answers, no errors, ${gen:-?} tokens generated" \
    || fail "reference: $n_ans answers for $n_req requests, $errs errors"

stress() { # label min-preemptions flags...
    local label=$1 want=$2
    shift 2
    local t0=$SECONDS
    "$RUN" --device cpu --ordered "$@" "$M" "$T/in.jsonl" -o "$T/out.jsonl" 2>"$T/err"
    local rc=$?
    local np
    np=$(grep -o '[0-9]* preemptions' "$T/err" | cut -d' ' -f1)
    if [ $rc != 0 ]; then
        fail "$label: exit $rc: $(tail -2 "$T/err")"
    elif ! cmp -s "$T/ref.jsonl" "$T/out.jsonl"; then
        fail "$label: answers differ from the reference ($(cmp "$T/ref.jsonl" "$T/out.jsonl" | head -1))"
    elif [ "$want" -gt 0 ] && [ "${np:-0}" -lt "$want" ]; then
        fail "$label: ${np:-no} preemptions, want at least $want: the pool was not small enough"
    elif [ "$want" = 0 ] && [ "${np:-1}" != 0 ]; then
        fail "$label: ${np:-?} preemptions, want none"
    else
        ok "$label: same answers, ${np:-?} preemptions ($((SECONDS - t0)) s)"
    fi
}
# K/V of this model: 1.5 KiB a token.  The largest request (n 2, about 90
# prompt and 96 new tokens) needs about 71 blocks of 4 tokens, 426 KiB: the
# pools below hold it, and little more.
stress "448 KiB pool, blocks of 4, 32 sequences" 300 \
    --threads 2 --kv-cache 448K --block-size 4 --max-seqs 32
stress "512 KiB pool, blocks of 16, 9 tokens a step, one thread" 150 \
    --threads 1 --kv-cache 512K --block-size 16 --max-batch-tokens 9 --max-seqs 64
stress "640 KiB pool, blocks of 8, 256 sequences" 300 \
    --threads 2 --kv-cache 640K --block-size 8 --max-seqs 256
stress "432 KiB pool, blocks of 1, 5 tokens a step" 100 \
    --threads 2 --kv-cache 432K --block-size 1 --max-batch-tokens 5 --max-seqs 64
stress "448 KiB pool, --no-evict: nothing preempted" 0 \
    --threads 2 --kv-cache 448K --block-size 4 --max-seqs 32 --no-evict
echo "$fails failed"
[ "$fails" = 0 ]
