#!/bin/bash
# test_ranks.sh - tensor and pipeline parallelism on the CPU through mpirun.
#
# Every fixture (tests/fixtures: one tiny checkpoint per architecture and
# its variants) is converted, split with llm-shard into tp 2, pp 2 and
# tp 2 x pp 2 (where the heads and layers allow; otherwise llm-shard must
# refuse with a reason), a model with experts also with expert parallelism
# (tp 2 ep 2, tp 4 ep 2, tp 4 ep 4, and tp 2 ep 2 x pp 2 on one), and run
# by `mpirun -np N llm-run DIR`: the greedy
# tokens must equal one rank's and the log-probabilities (the chosen token
# and the top 5) agree within 1e-5 relative.  Pipelines cut into
# micro-batches (LLM_PP_MICRO 1, default, 3) give the same answers.  Shard then merge must give the
# parent back byte for byte.  Then what goes wrong: tp not dividing the
# heads, --ep that does not fit, a missing / foreign / misnumbered rank
# file, rank files of different expert splits, ranks of different
# micro-batch counts, the wrong number of ranks, a whole model under mpirun, a rank that stops answering and a rank
# killed mid-run: each a clear line, a non-zero exit, never a hang.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
T=$(mktemp -d "${TMPDIR:-/tmp}/test-ranks-XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# quiet, local, and no accidental GPU
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
# under LeakSanitizer: Open MPI's own allocations are not ours (plugins stay
# loaded so their frames have names)
export OMPI_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$S/tests/mpi/lsan.supp"
# whole stacks (Open MPI's plugins have no frame pointers), so the
# suppressions see the library an allocation came from
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
MPIRUN="mpirun --oversubscribe -q"
RUN="$B/cmd/llm-run -q --device cpu --threads 1"
SHARD="$B/cmd/llm-shard -q"
n=0 fails=0
ok() { n=$((n + 1)); echo "ok: $*"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

# three greedy prompts of token ids every fixture's vocabulary has
for i in 1 2 3; do
    printf '{"id": "p%d", "input_ids": [%d, 7, 11, 13, %d], "max_tokens": 6, "temperature": 0, "ignore_eos": true, "logprobs": 5}\n' \
        "$i" $((i + 2)) $((i * 5))
done >"$T/p.jsonl"

configs="tp2:2:1 pp2:1:2 tp2pp2:2:2"
# expert parallelism (name:tp:pp:ep) where the model has experts
ep_configs="tp2ep2:2:1:2 tp4ep2:4:1:2 tp4ep4:4:1:4"
# under the sanitizers (ten times slower) a fixture of each kind of split:
# GQA, MoE, ALiBi, sandwich norms, parallel residual with biases, per-head
# LayerNorm q/k, learned positions, tied embeddings
subset=""
ldd "$B/cmd/llm-run" 2>/dev/null | grep -q libasan &&
    subset="llama3-bf16 qwen3-moe bloom gemma2 falcon-40b stablelm gpt2 qwen2-bf16"
for dir in "$S"/tests/fixtures/*/; do
    f=$(basename "$dir")
    [ -f "$dir/config.json" ] || continue
    [ -z "$subset" ] || [[ " $subset " == *" $f "* ]] || continue
    if ! "$B/cmd/llm-convert" -q "$dir" -o "$T/$f.llm" 2>"$T/err"; then
        bad "$f: convert: $(cat "$T/err")"
        continue
    fi
    if ! $RUN "$T/$f.llm" "$T/p.jsonl" -o "$T/$f.one" 2>"$T/err"; then
        # a fixture one rank does not run (beyond the engine's limits) is not split either
        grep -q "beyond\|limit" "$T/err" && { ok "$f: one rank refuses it: $(head -1 "$T/err")"; continue; }
        bad "$f: one rank: $(cat "$T/err")"
        continue
    fi
    more=""
    if grep -q '"num_local_experts"\|"num_experts"' "$dir/config.json"; then
        more=$ep_configs
        [ "$f" = qwen3-moe ] && more="$more tp2ep2pp2:2:2:2"
    fi
    for c in $configs $more; do
        IFS=: read -r name tp pp ep <<<"$c"
        ep=${ep:-1}
        np=$((tp * pp))
        d="$T/$f.$name"
        if ! $SHARD --tp "$tp" --pp "$pp" --ep "$ep" "$T/$f.llm" -o "$d" 2>"$T/err"; then
            if [ "$(wc -l <"$T/err")" = 1 ] && grep -q "does not divide\|must divide\|exceeds\|one must divide\|not split across ranks" "$T/err" &&
                [ -z "$(ls -A "$d" 2>/dev/null)" ]; then
                ok "$f $name: refused: $(cat "$T/err")"
            else
                bad "$f $name: llm-shard: $(cat "$T/err")"
            fi
            continue
        fi
        if $SHARD --merge "$d" -o "$T/merged.llm" 2>"$T/err" && cmp -s "$T/merged.llm" "$T/$f.llm"; then
            ok "$f $name: merge gives the parent byte for byte"
        else
            bad "$f $name: merge: $(cat "$T/err")"
        fi
        if ! timeout 120 $MPIRUN -np "$np" $RUN "$d" "$T/p.jsonl" -o "$T/$f.$name.out" >"$T/err" 2>&1; then
            bad "$f $name: mpirun -np $np: $(head -5 "$T/err")"
            continue
        fi
        if r=$(python3 "$S/tests/mpi/compare_runs.py" "$T/$f.one" "$T/$f.$name.out" 1e-5); then
            ok "$f $name ($np ranks): $r"
        else
            bad "$f $name ($np ranks): $r"
        fi
        rm -rf "$d"
    done
done

# ---- pipeline micro-batches ------------------------------------------------------------
# A pipeline step cut into micro-batches of whole sequences (LLM_PP_MICRO;
# default: one per stage) gives the answers of the whole step at once:
# five requests of different prompt lengths and lengths, prompts in chunks
# of a 16-token budget beside the decodes, so micro-batches are uneven.
for i in 1 2 3 4 5; do
    ids=$(seq -s, 3 7 $((3 + 7 * (3 * i - 1))) | sed 's/,/, /g')
    printf '{"id": "m%d", "input_ids": [%s], "max_tokens": %d, "temperature": 0, "ignore_eos": true, "logprobs": 5}\n' \
        "$i" "$ids" $((3 + i))
done >"$T/micro.jsonl"
micro_fixtures="llama3-bf16 neox-parallel qwen3-moe"
micro_configs="pp2:1:2 tp2pp2:2:2"
[ -n "$subset" ] && micro_fixtures="llama3-bf16 qwen3-moe" micro_configs="tp2pp2:2:2"
for f in $micro_fixtures; do
    [ -f "$T/$f.llm" ] || "$B/cmd/llm-convert" -q "$S/tests/fixtures/$f" -o "$T/$f.llm"
    for c in $micro_configs; do
        IFS=: read -r name tp pp <<<"$c"
        d="$T/$f.micro.$name"
        $SHARD --tp "$tp" --pp "$pp" "$T/$f.llm" -o "$d"
        for m in 1 default 3; do
            if [ $m = default ]; then unset LLM_PP_MICRO; else export LLM_PP_MICRO=$m; fi
            if ! timeout 120 $MPIRUN -np $((tp * pp)) $RUN --max-batch-tokens 16 "$d" "$T/micro.jsonl" \
                -o "$T/micro.$m.out" >"$T/err" 2>&1; then
                bad "$f $name micro-batches $m: $(head -5 "$T/err")"
            elif [ $m = 1 ]; then
                continue
            elif r=$(python3 "$S/tests/mpi/compare_runs.py" "$T/micro.1.out" "$T/micro.$m.out" 1e-5); then
                ok "$f $name: micro-batches $m as one: $r"
            else
                bad "$f $name: micro-batches $m against one: $r"
            fi
        done
        unset LLM_PP_MICRO
        rm -rf "$d"
    done
done
$SHARD --pp 2 "$T/llama3-bf16.llm" -o "$T/micro.pp2"

# ---- quantized artifacts ------------------------------------------------------------
# Scales follow their weights; int4 groups are never cut.  Weight-only
# formats and fp8 with static activation scales give one rank's answers
# (1e-5, the sums' order aside).  With per-token activation scales (fp8-pc,
# int8-sq) each rank scales the part of a row-parallel input it holds (as
# TensorRT-LLM does), so the rounding differs from one rank's within the
# format's own error: the same greedy tokens, log-probabilities within 0.25.
Q="$B/cmd/llm-quantize -q --no-eval --calib-samples 8 --calib-len 64"
D="$S/lib/data/default.llm"
for mode in "w4a16 --group-size 32:1e-5" "int4-awq --group-size 32:1e-5" "w8a16:1e-5" \
    "fp8:1e-5" "fp8-pc:0.25" "int8-sq:0.25"; do
    m=${mode%%:*} tol=${mode##*:}
    name=${m%% *}
    if ! $Q -m $m "$D" -o "$T/q.llm" 2>"$T/err" || ! $RUN "$T/q.llm" "$T/p.jsonl" -o "$T/q.one" 2>>"$T/err" ||
        ! $SHARD --tp 2 --pp 2 "$T/q.llm" -o "$T/q.ranks" 2>>"$T/err"; then
        bad "$name: $(cat "$T/err")"
        continue
    fi
    if $SHARD --merge "$T/q.ranks" -o "$T/q.merged" && cmp -s "$T/q.merged" "$T/q.llm"; then
        ok "$name: tp 2 x pp 2 merges back byte for byte"
    else
        bad "$name: merge differs"
    fi
    if timeout 120 $MPIRUN -np 4 $RUN "$T/q.ranks" "$T/p.jsonl" -o "$T/q.out" >"$T/err" 2>&1 &&
        r=$(python3 "$S/tests/mpi/compare_runs.py" "$T/q.one" "$T/q.out" "$tol"); then
        ok "$name tp 2 x pp 2: $r"
    else
        bad "$name tp 2 x pp 2: ${r:-} $(head -c 300 "$T/err")"
    fi
    rm -rf "$T/q.ranks"
done
$Q -m w4a16 --group-size 64 "$D" -o "$T/q64.llm"

# ---- llm-bench the same way: rank 0 measures and writes, the others follow ---------------
$SHARD --tp 2 --pp 2 "$T/llama3-bf16.llm" -o "$T/bench4"
if timeout 300 $MPIRUN -np 4 "$B/cmd/llm-bench" -q throughput --device cpu --threads 1 --no-probe \
    --num-requests 6 --input-len 12 --output-len 6 -r 1 "$T/bench4" -o "$T/bench.json" >"$T/err" 2>&1 &&
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = [x for x in d["results"] if x.get("test") == "throughput"]
assert r, "no throughput result"
print(json.dumps(r[0]["engine"]) [:120])' "$T/bench.json" >"$T/bres" 2>&1; then
    ok "llm-bench under mpirun -np 4: a result from rank 0 ($(cat "$T/bres"))"
else
    bad "llm-bench under mpirun: $(head -c 400 "$T/err") $(cat "$T/bres" 2>/dev/null)"
fi

# ---- what goes wrong ----------------------------------------------------------------
M="$T/llama3-bf16.llm" O="$T/qwen2-bf16.llm"
$SHARD --tp 2 "$M" -o "$T/good"
$SHARD --tp 2 "$O" -o "$T/other"

# one line, naming what was wrong; no output file left
expect_fail() { # name pattern command...
    local name=$1 pat=$2
    shift 2
    rm -f "$T/res.jsonl"
    timeout 60 "$@" >"$T/out" 2>&1
    local rc=$?
    local lines
    lines=$(grep -c "^llm-" "$T/out")
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$lines" = 1 ] && grep -q -- "$pat" "$T/out" &&
        [ ! -s "$T/res.jsonl" ]; then
        ok "$name: exit $rc: $(grep '^llm-' "$T/out")"
    else
        bad "$name: exit $rc (124 = hung), $lines lines from llm: $(head -c 600 "$T/out")"
    fi
}
expect_fail "tp 3 on 4 heads" "does not divide the model's 4 attention heads" \
    $SHARD --tp 3 "$M" -o "$T/tp3"
[ -z "$(ls -A "$T/tp3" 2>/dev/null)" ] && ok "tp 3: no rank file written" || bad "tp 3 left files"
expect_fail "tp 2 x pp 8 on 2 layers" "exceeds" $SHARD --tp 2 --pp 8 "$M" -o "$T/pp8"
# expert parallelism: ep groups of the tp ranks, each with whole experts
E="$T/qwen3-moe.llm"
expect_fail "ep 4 over tp 2" "ep 4 exceeds tp 2" $SHARD --tp 2 --ep 4 "$E" -o "$T/ep"
expect_fail "ep 3 over tp 4" "ep 3 does not divide tp 4" $SHARD --tp 4 --ep 3 "$E" -o "$T/ep"
expect_fail "ep 3 over 4 experts" "ep 3 does not divide the model's 4 experts" \
    $SHARD --tp 3 --ep 3 "$E" -o "$T/ep"
expect_fail "ep 2 on a model without experts" "ep 2: the model has no experts" \
    $SHARD --tp 2 --ep 2 "$M" -o "$T/ep"
expect_fail "ep 0" "--ep must be a whole number" $SHARD --tp 2 --ep 0 "$E" -o "$T/ep"
expect_fail "merge with --ep" "not --tp / --pp / --ep" $SHARD --merge "$T/good" --ep 2 -o "$T/ep.llm"
[ -z "$(ls -A "$T/ep" 2>/dev/null)" ] && [ ! -e "$T/ep.llm" ] && ok "--ep refused: nothing written" ||
    bad "a refused --ep left files"
$SHARD --tp 2 --ep 2 "$E" -o "$T/ep2" && $SHARD --tp 2 "$E" -o "$T/ep1" &&
    cp "$T/ep1/rank-1.llm" "$T/ep2/rank-1.llm"
expect_fail "rank files of two expert splits" "not a part of the same model.*ep 1; rank 0: .*ep 2" \
    $MPIRUN -np 2 $RUN "$T/ep2" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "merge of two expert splits" "not a part of the same split" \
    $SHARD --merge "$T/ep2" -o "$T/res.jsonl"
expect_fail "int4 groups of 64 over tp 2" "must be multiples of the group size" \
    $SHARD --tp 2 "$T/q64.llm" -o "$T/g64"
cp "$M" "$T/corrupt.llm" &&
    python3 -c 'import os, sys
p = sys.argv[1]; n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2); b = f.read(1); f.seek(n // 2); f.write(bytes([b[0] ^ 0xff]))' "$T/corrupt.llm"
expect_fail "a corrupt parent" "checksum mismatch" $SHARD --tp 2 "$T/corrupt.llm" -o "$T/corrupt"
[ -z "$(ls -A "$T/corrupt" 2>/dev/null)" ] && ok "corrupt parent: no rank file written" ||
    bad "corrupt parent left rank files"
expect_fail "a corrupt parent through a pipe" "checksum mismatch" \
    sh -c "cat '$T/corrupt.llm' | $SHARD --tp 2 - -o '$T/corrupt2'"
cp -r "$T/good" "$T/missing" && rm "$T/missing/rank-1.llm"
expect_fail "missing rank file" "rank-1.llm" $MPIRUN -np 2 $RUN "$T/missing" "$T/p.jsonl" -o "$T/res.jsonl"
cp -r "$T/good" "$T/foreign" && cp "$T/other/rank-1.llm" "$T/foreign/rank-1.llm"
expect_fail "foreign rank file" "not a part of the same model" \
    $MPIRUN -np 2 $RUN "$T/foreign" "$T/p.jsonl" -o "$T/res.jsonl"
cp -r "$T/good" "$T/swapped" && mv "$T/swapped/rank-0.llm" "$T/swapped/x" &&
    mv "$T/swapped/rank-1.llm" "$T/swapped/rank-0.llm" && mv "$T/swapped/x" "$T/swapped/rank-1.llm"
expect_fail "swapped rank files" "holds rank 1" \
    $MPIRUN -np 2 $RUN "$T/swapped" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "3 ranks for 2 files" "one of 2 ranks" \
    $MPIRUN -np 3 $RUN "$T/good" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "whole model under mpirun" "split it with llm-shard" \
    $MPIRUN -np 2 $RUN "$M" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "ranks without mpirun" "mpirun -np 2" $RUN "$T/good" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "LLM_PP_MICRO=0" "LLM_PP_MICRO='0' is not a number" \
    env LLM_PP_MICRO=0 $MPIRUN -np 2 $RUN "$T/micro.pp2" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "ranks of different LLM_PP_MICRO" "rank 1 cuts a step into 3 pipeline micro-batches, rank 0 into 2" \
    $MPIRUN -np 1 env LLM_PP_MICRO=2 $RUN "$T/micro.pp2" "$T/p.jsonl" -o "$T/res.jsonl" : \
    -np 1 env LLM_PP_MICRO=3 $RUN "$T/micro.pp2" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "a rank file run alone" "run every rank" $RUN "$T/good/rank-0.llm" "$T/p.jsonl" -o "$T/res.jsonl"
expect_fail "merge of a foreign set" "not a part of the same split" \
    $SHARD --merge "$T/foreign" -o "$T/res.jsonl"
[ ! -e "$T/res.jsonl" ] && ok "merge: no partial artifact" || bad "merge left an artifact"

# one rank directory runs without mpirun, as the whole model
$SHARD --tp 1 "$M" -o "$T/one"
if $RUN "$T/one" "$T/p.jsonl" -o "$T/one.out" 2>"$T/err" &&
    python3 "$S/tests/mpi/compare_runs.py" "$T/llama3-bf16.one" "$T/one.out" 0 >/dev/null; then
    ok "a directory of one rank runs without mpirun, the same answers"
else
    bad "one-rank directory: $(cat "$T/err")"
fi

# a long job to interrupt: many requests of many tokens
for i in $(seq 1 200); do
    printf '{"id": "l%d", "input_ids": [5, 7, %d], "max_tokens": 200, "ignore_eos": true}\n' "$i" $((i % 50 + 3))
done >"$T/long.jsonl"
rank_pid() { # rank: the pid of that rank's llm-run
    for p in $(pgrep -f "llm-run.*$T/good"); do
        [ "$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" = "$1" ] &&
            echo "$p" && return
    done
}
interrupt() { # name signal timeout
    rm -f "$T/res.jsonl"
    LLM_COMM_TIMEOUT=$3 timeout 120 $MPIRUN -np 2 $RUN --max-seqs 4 "$T/good" "$T/long.jsonl" \
        -o "$T/res.jsonl" >"$T/out" 2>&1 &
    local job=$! pid="" k
    for k in $(seq 1 100); do
        pid=$(rank_pid 1)
        [ -n "$pid" ] && [ -s "$T/res.jsonl" ] && break
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        bad "$1: rank 1 not found"
        wait $job
        return
    fi
    kill "-$2" "$pid"
    wait $job
    local rc=$?
    [ "$2" = STOP ] && kill -KILL "$pid" 2>/dev/null
    local answered
    answered=$(grep -c '"output_ids"' "$T/res.jsonl")
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && python3 -c '
import json, sys
for line in open(sys.argv[1]): json.loads(line)' "$T/res.jsonl"; then
        ok "$1: exit $rc, $answered whole answers kept: $(grep -m1 "^llm-\|mpirun" "$T/out")"
    else
        bad "$1: exit $rc (124 = hung): $(head -c 600 "$T/out")"
    fi
}
interrupt "a rank killed mid-run" KILL 600
grep -q "^llm-run: rank 0: stopped: the job is ending" "$T/out" && ok "the killed rank: rank 0 says why it stops" ||
    bad "the killed rank: no line from rank 0: $(head -c 400 "$T/out")"
interrupt "a rank that stops answering" STOP 3
grep -q "no answer from the other ranks in 3 s" "$T/out" && ok "the stopped rank: the timeout names it" ||
    bad "the stopped rank: no timeout message: $(head -c 400 "$T/out")"

echo "$n checks, $fails failed"
[ "$fails" = 0 ]
