#!/bin/bash
# test_llm_run.sh - llm-run from the outside, on tiny real models (the
# fixtures in tests/fixtures converted with llm-convert):
#   1. command line: help, version, usage errors (exit 2), fatal errors
#      (exit 1, one line naming the file), every option of --help in the man page;
#   2. greedy answers equal Hugging Face's recorded generations (ids, prompt
#      length, text), with a large batch and with a tiny token budget;
#   3. the same answers whatever the batch shape, KV pool (preemption) and
#      --ordered, from a file or a pipe;
#   4. SIGKILL at random moments, then --resume, until done: exactly one
#      line per request, identical to an uninterrupted run.
# Each check prints what it compared; the script exits 1 if any failed.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
RUN=$B/cmd/llm-run
CONV=$B/cmd/llm-convert
GOLD=$B/tests/engine/run-golden
FIX=$S/tests/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/test-llm-run-XXXXXX")
trap 'rm -rf "$T"' EXIT
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

# ---- 1. command line ----------------------------------------------------------
"$RUN" -h >"$T/help" 2>"$T/err"
[ $? = 0 ] && head -1 "$T/help" | grep -q '^Usage: llm-run \[OPTIONS\] MODEL \[INPUT.jsonl\]' \
    && [ ! -s "$T/err" ] && ok "-h: usage on stdout, exit 0" || fail "-h"
"$RUN" --version >"$T/out" && grep -q '^llm-run [0-9]' "$T/out" && ok "--version" || fail "--version"
usage_case() { # expected-substring args...
    local want=$1
    shift
    "$RUN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc = 2 ] && grep -q "^llm-run: .*$want" "$T/err" && [ "$(grep -c '' "$T/err")" = 2 ] \
        && [ ! -s "$T/out" ]; then
        ok "usage error ($*): $(head -1 "$T/err")"
    else
        fail "usage error ($*): exit $rc, stderr: $(cat "$T/err")"
    fi
}
usage_case "missing the model" 
usage_case "unknown option" --frobnicate "$M"
usage_case "max-seqs" --max-seqs 0 "$M"
usage_case "kv-cache" --kv-cache lots "$M"
usage_case "kv-cache" --kv-cache 1.5 "$M"
usage_case "device" --device tpu "$M"
usage_case "temperature" --temperature -1 "$M"
usage_case "top-p" --top-p 0 "$M"
usage_case "resume needs an output" --resume "$M"
usage_case "one model and one input" "$M" a b
usage_case "needs a value" "$M" --max-tokens
fatal_case() { # substring args...
    local want=$1
    shift
    echo '{"prompt": "x"}' | "$RUN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] && grep -q "^llm-run: .*$want" "$T/err"; then
        ok "fatal error: $(cat "$T/err")"
    else
        fail "fatal error ($*): exit $rc, stderr: $(cat "$T/err")"
    fi
}
fatal_case "nosuch.llm" "$T/nosuch.llm"
fatal_case "nosuch.jsonl" "$M" "$T/nosuch.jsonl"
head -c 100 "$M" >"$T/cut.llm"
fatal_case "cut.llm" "$T/cut.llm"
# the output is checked before anything is read: with a missing model too,
# the error names the output
fatal_case "unable to create '$T/no/such/dir/a.jsonl'" "$T/nosuch.llm" -o "$T/no/such/dir/a.jsonl"
fatal_case "unable to create '$T': it is a folder" "$T/nosuch.llm" -o "$T"
# a run that fails before its first answer leaves an existing output as it
# was and creates no new one
echo "old answers" >"$T/old.jsonl"
fatal_case "nosuch.llm" "$T/nosuch.llm" -o "$T/old.jsonl"
[ "$(cat "$T/old.jsonl")" = "old answers" ] && ok "an existing output survives a failed start" \
    || fail "a failed start changed the existing output: $(head -c 80 "$T/old.jsonl")"
fatal_case "cut.llm" "$T/cut.llm" -o "$T/new.jsonl"
[ ! -e "$T/new.jsonl" ] && ok "a failed start leaves no new output" || fail "'$T/new.jsonl' was left"
# exit status: 0 when every request is answered, 3 when any got an error
# line (the others still answered), also counting error lines a --resume
# finds in the output
status_case() { # expected-status label file args...
    local want=$1 label=$2 file=$3
    shift 3
    "$RUN" -q --device cpu --threads 1 "$@" "$M" "$file" >"$T/st.out" 2>"$T/st.err"
    local rc=$?
    [ $rc = "$want" ] && ok "exit $rc: $label" || fail "$label: exit $rc, expected $want: $(cat "$T/st.err")"
}
printf '{"id": 1, "prompt": "a", "max_tokens": 2}\n{"id": 2, "prompt": "b", "max_tokens": 2}\n' >"$T/good.jsonl"
printf '{"id": 1, "prompt": "a", "max_tokens": 2}\n{"id": 2, "prompt": "b", "max_tokens": 0}\n' >"$T/onebad.jsonl"
status_case 0 "every request answered" "$T/good.jsonl"
status_case 3 "one request answered by an error line" "$T/onebad.jsonl"
[ "$(grep -c '"output_ids"' "$T/st.out")/$(grep -c '"error":{' "$T/st.out")" = 1/1 ] \
    && ok "exit 3 still answers the good request" || fail "answers: $(cat "$T/st.out")"
status_case 3 "an error line, written to a file" "$T/onebad.jsonl" -o "$T/st.jsonl"
status_case 3 "--resume over an output holding an error line" "$T/onebad.jsonl" --resume -o "$T/st.jsonl"
status_case 0 "--resume over a clean output" "$T/good.jsonl" -o "$T/st2.jsonl"
status_case 0 "--resume over a clean output, nothing left to do" "$T/good.jsonl" --resume -o "$T/st2.jsonl"
grep -q '^Exit status: 0 every request answered, 3 ' "$T/help" && grep -q '^\*3\*' "$S/man/llm-run.1.scd" \
    && ok "exit status 3 in --help and the man page" || fail "exit status 3 not documented"
MAN=$S/man/llm-run.1.scd
missing=""
for opt in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
    grep -q -- "\*$opt\*" "$MAN" || missing="$missing $opt"
done
[ -z "$missing" ] && ok "every --help option is in the man page" || fail "not in man page:$missing"
grep -q '^\*llm-run\* \[_OPTIONS_\] _MODEL_ \[_INPUT.jsonl_\]' "$MAN" \
    && ok "man page synopsis matches --help" || fail "man page synopsis"

# ---- 2. greedy answers against Hugging Face ------------------------------------
# (every family: text in, tokens and text out, through the tools a user runs)
for f in llama2-f32 llama3-f32 qwen2-f32 mistral-f32 gpt2 gptj neox-parallel neox-sequential \
    falcon-7b falcon-40b falcon-alibi mpt mpt-clip opt opt-350m bloom gemma gemma2 phi3 qwen3 \
    mixtral qwen3-moe stablelm stablelm-parallel starcoder2 phi gpt-bigcode gpt-bigcode-mha \
    gemma3 gemma3-hub gemma3-mm glm glm4 smollm3 cohere cohere2 granite granitemoe mistral3-mm \
    olmo2 olmo3 olmoe olmo nemotron arcee qwen2-moe seed-oss ernie4_5 helium gpt-oss \
    gpt-oss-mxfp4 exaone4 exaone4-full deepseek-v3 deepseek-v3-qproj \
    deepseek-v2 deepseek-v2-lite glm4-moe minimax-m2 dots1 \
    ministral ministral3 granitemoeshared ernie4_5-moe qwen2_5-vl qwen2_5-vl-hub \
    qwen3-vl qwen3-vl-moe qwen3-vl-moe-hub; do
    [ -f "$FIX/$f/reference.json" ] || { fail "$f: no fixture"; continue; }
    "$CONV" -q "$FIX/$f" -o "$T/$f.llm" || { fail "$f: llm-convert"; continue; }
    "$GOLD" input "$FIX/$f/reference.json" >"$T/gold.jsonl"
    for shape in "" "--max-batch-tokens 5 --max-seqs 3 --block-size 4"; do
        # shellcheck disable=SC2086
        "$RUN" -q --device cpu --threads 2 $shape "$T/$f.llm" "$T/gold.jsonl" -o "$T/gold.out"
        if "$GOLD" check "$FIX/$f/reference.json" "$T/gold.out" >"$T/gold.log"; then
            ok "$f ${shape:-(one batch)}: $(tail -1 "$T/gold.log")"
        else
            fail "$f ${shape:-(one batch)}: $(grep -m1 FAIL "$T/gold.log")"
        fi
    done
done

# ---- 3. a mixed input, same answers whatever the batch ----------------------------
# shellcheck source=requests.sh
. "$S/tests/engine/requests.sh"
gen_requests 9 70 >"$T/in.jsonl"
# the input is the same every time (each run of this script compares
# the same requests; a reseeded $RANDOM once made it differ between runs)
gen_requests 9 70 | cmp -s - "$T/in.jsonl" && ok "the request generator is deterministic" \
    || fail "gen_requests 9 70 gave different lines twice"
n_req=$(grep -c . "$T/in.jsonl")
"$RUN" -q --device cpu --threads 2 "$M" "$T/in.jsonl" -o "$T/ref.jsonl" --ordered
[ "$(grep -c '' "$T/ref.jsonl")" = "$n_req" ] && ok "reference: $n_req answers for $n_req request lines" \
    || fail "reference: $(grep -c '' "$T/ref.jsonl") answers for $n_req requests"
sort "$T/ref.jsonl" >"$T/ref.sorted"
grep -q '"context_length_exceeded"' "$T/ref.jsonl" \
    && fail "reference: a request does not fit the pool (requests.sh must keep them small)"
errs=$(grep -c '"error":{\|"status_code":400' "$T/ref.jsonl")
[ "$errs" -ge 15 ] && grep -q '"duplicate_id"' "$T/ref.jsonl" \
    && ok "bad lines answered with error lines ($errs), duplicate id flagged" || fail "error lines: $errs"
same() { # label file ordered
    if [ "$3" = 1 ]; then cmp -s "$T/ref.jsonl" "$2"; else sort "$2" | cmp -s "$T/ref.sorted" -; fi \
        && { ok "$1: same answers"; return; }
    # name the first answer that differs (a pool too small for a request
    # answers it with context_length_exceeded: the input must fit every pool)
    local first
    first=$(sort "$2" | comm -13 "$T/ref.sorted" - | head -1 | cut -c1-200)
    fail "$1: answers differ, first: $first"
}
"$RUN" --device cpu --threads 1 --max-batch-tokens 7 --max-seqs 4 --block-size 4 \
    --kv-cache 160K "$M" "$T/in.jsonl" -o "$T/b.jsonl" --ordered 2>"$T/b.err"
np=$(grep -o '[0-9]* preemptions' "$T/b.err" | cut -d' ' -f1)
same "budget 7, 4 seqs, 160 KiB KV pool (${np:-?} preemptions), ordered" "$T/b.jsonl" 1
[ "${np:-0}" -gt 0 ] || fail "the small pool caused no preemption: $(tail -1 "$T/b.err")"
"$RUN" -q --device cpu --threads 2 --block-size 16 --max-seqs 64 "$M" <"$T/in.jsonl" >"$T/c.jsonl"
same "pipe in, stdout out, 64 seqs, unordered" "$T/c.jsonl" 0
cat "$T/in.jsonl" | "$RUN" -q --device cpu "$M" - -o "$T/d.jsonl" --ordered
same "'-' from a pipe, ordered" "$T/d.jsonl" 1

# ---- 4. SIGKILL and --resume ------------------------------------------------------
RANDOM=11
KFLAGS="-q --device cpu --threads 1 --max-seqs 2"
t0=$(date +%s%N)
# shellcheck disable=SC2086
"$RUN" $KFLAGS "$M" "$T/in.jsonl" >/dev/null
dur=$((($(date +%s%N) - t0) / 1000000))
[ "$dur" -ge 20 ] || dur=20
echo "an uninterrupted run takes $dur ms; kills land anywhere in that time"
for ordered in "" "--ordered"; do
    rm -f "$T/k.jsonl"
    kills=0
    for round in $(seq 1 200); do
        # shellcheck disable=SC2086
        "$RUN" $KFLAGS $ordered --resume -o "$T/k.jsonl" "$M" "$T/in.jsonl" 2>"$T/k.err" &
        pid=$!
        ms=$((RANDOM % (dur / 3 + 1)))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        kill -9 "$pid" 2>/dev/null
        wait "$pid"
        rc=$?
        [ $rc = 3 ] && break # finished; the input holds bad lines
        [ $rc = 137 ] || { fail "resume run exited $rc: $(cat "$T/k.err")"; break; }
        kills=$((kills + 1))
    done
    # On a loaded machine 200 early kills may not reach the end: finish with
    # one uninterrupted resume (the answers must still equal the reference).
    if [ "$rc" = 137 ]; then
        # shellcheck disable=SC2086
        "$RUN" $KFLAGS $ordered --resume -o "$T/k.jsonl" "$M" "$T/in.jsonl" 2>"$T/k.err"
        rc=$?
        [ $rc = 3 ] || fail "final resume run exited $rc: $(cat "$T/k.err")"
    fi
    same "killed $kills times (SIGKILL), resumed ${ordered:---unordered}" "$T/k.jsonl" "${ordered:+1}"
    [ "$kills" -gt 0 ] || fail "no run was killed: the test did not test resume"
done
"$RUN" -q --device cpu --resume -o "$T/k.jsonl" "$M" "$T/in.jsonl"
rc=$?
[ $rc = 3 ] && cmp -s "$T/k.jsonl" "$T/ref.jsonl" \
    && ok "--resume of a finished output changes nothing, exit 3 for its error lines" \
    || fail "--resume of a finished output: exit $rc"

echo "$fails failed"
[ "$fails" = 0 ]
