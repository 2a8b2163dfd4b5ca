#!/bin/bash
# test_llm_build.sh - llm-build from the outside, on the tiny fixtures
# (tests/fixtures) converted with llm-convert:
#   1. command line: help, version, usage errors (exit 2, two lines), fatal
#      errors (exit 1, one line naming the file), every --help option in the
#      man page and the synopsis;
#   2. engines for sm_90 built here (no GPU needed; where there is one, for
#      its architecture, with measured choices): llm-info shows the
#      engine section and verifies; every tensor equals its source converted,
#      mlp.fc_gate bit for bit (engine-compare); the same input gives the
#      same bytes, from a file or a pipe, to a file or a pipe;
#   3. llm-run --device cpu gives the same answers from the engine as from
#      the artifact in the same dtype; --device cuda without a GPU fails
#      with one line;
#   4. no output left behind: bad input, interrupted (SIGTERM, SIGINT,
#      SIGHUP) while reading a stalled pipe, and SIGKILL (never the final
#      name).
# Each check prints what it compared; the script exits 1 if any failed.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
BUILD=$B/cmd/llm-build
CONV=$B/cmd/llm-convert
INFO=$B/cmd/llm-info
RUN=$B/cmd/llm-run
CMP=$B/tests/build/engine-compare
FIX=$S/tests/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/test-llm-build-XXXXXX")
trap 'rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000
fails=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

if [ ! -f "$FIX/llama3-f32/config.json" ]; then
    echo "skip: no fixtures in $FIX"
    exit 77
fi
"$CONV" -q "$FIX/llama3-f32" -o "$T/m.llm" || { echo "FAIL: llm-convert of llama3-f32"; exit 1; }
M=$T/m.llm
# is there a GPU here? (decides what "no --arch" must do)
"$BUILD" -q "$M" -o "$T/probe.engine" 2>"$T/probe.err"
probe=$?
if [ $probe = 0 ]; then have_gpu=1; else have_gpu=0; fi
# the target: sm_90 by --arch alone; a GPU's own architecture where there is one
ARCH=sm_90
[ $have_gpu = 1 ] && ARCH=$("$INFO" --no-tensors "$T/probe.engine" | sed -n 's/^engine: \(sm_[0-9]*\) .*/\1/p')
echo "target $ARCH ($([ $have_gpu = 1 ] && echo "GPU here, choices measured" || echo "no GPU here"))"

# ---- 1. command line ------------------------------------------------------------------
"$BUILD" -h >"$T/help" 2>"$T/err"
[ $? = 0 ] && head -1 "$T/help" | grep -q '^Usage: llm-build \[OPTIONS\] ARTIFACT \[-o ENGINE\]' \
    && [ ! -s "$T/err" ] && ok "-h: usage on stdout, exit 0" || fail "-h"
"$BUILD" --version >"$T/out" && grep -q '^llm-build [0-9]' "$T/out" && ok "--version" \
    || fail "--version"
usage_case() { # expected-substring args...
    local want=$1
    shift
    "$BUILD" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc = 2 ] && grep -q "^llm-build: .*$want" "$T/err" && [ "$(grep -c '' "$T/err")" = 2 ] \
        && [ ! -s "$T/out" ]; then
        ok "usage error ($*): $(head -1 "$T/err")"
    else
        fail "usage error ($*): exit $rc, stderr: $(cat "$T/err")"
    fi
}
usage_case "missing the artifact" --arch $ARCH -o "$T/x"
usage_case "unknown option" --frobnicate "$M"
usage_case "one artifact at a time" --arch $ARCH "$M" "$M" -o "$T/x"
usage_case "needs a value" "$M" --arch
usage_case "dtype" --dtype f8 --arch $ARCH "$M" -o "$T/x"
usage_case "arch" --arch ampere "$M" -o "$T/x"
usage_case "arch" --arch sm_9 "$M" -o "$T/x"
usage_case "max-batch" --max-batch 0 --arch $ARCH "$M" -o "$T/x"
usage_case "max-tokens" --max-tokens -3 --arch $ARCH "$M" -o "$T/x"
usage_case "max-seq-len" --max-seq-len 1 --arch $ARCH "$M" -o "$T/x"
usage_case "block-size" --block-size 5000 --arch $ARCH "$M" -o "$T/x"
usage_case "graph-batch-sizes" --graph-batch-sizes 4,2 --arch $ARCH "$M" -o "$T/x"
usage_case "graph-batch-sizes" --graph-batch-sizes 1,x --arch $ARCH "$M" -o "$T/x"
usage_case "kv-dtype" --kv-dtype f8e4m3 --arch $ARCH "$M" -o "$T/x"
usage_case "device" --device -1 --arch $ARCH "$M" -o "$T/x"
usage_case "max-batch 64 is more than --max-tokens 32" --max-batch 64 --max-tokens 32 --arch $ARCH "$M" -o "$T/x"
usage_case "kv-dtype f16: the KV cache is kept in the compute dtype" --kv-dtype f16 --dtype bf16 --arch $ARCH "$M" -o "$T/x"
usage_case "graph-batch-sizes" --graph-batch-sizes 1,2,512 --max-batch 256 --arch $ARCH "$M" -o "$T/x"
if "$CONV" -q "$FIX/rope-dynamic" -o "$T/dyn.llm" 2>/dev/null; then
    usage_case "max-seq-len 1000: this model has dynamic rope positions up to 64" \
        --max-seq-len 1000 --arch $ARCH "$T/dyn.llm" -o "$T/x"
fi
if [ $have_gpu = 0 ]; then
    usage_case "give the target architecture with --arch" "$M" -o "$T/x"
fi
[ ! -e "$T/x" ] && ok "usage errors wrote nothing" || fail "a usage error left '$T/x'"
fatal_case() { # substring args...
    local want=$1
    shift
    "$BUILD" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] && grep -q "^llm-build: .*$want" "$T/err"; then
        ok "fatal error: $(cat "$T/err")"
    else
        fail "fatal error ($*): exit $rc, stderr: $(cat "$T/err")"
    fi
}
fatal_case "nosuch.llm" -q --arch $ARCH "$T/nosuch.llm" -o "$T/x"
head -c 1000 "$M" >"$T/cut.llm"
fatal_case "cut.llm" -q --arch $ARCH "$T/cut.llm" -o "$T/x"
echo '{"not": "an artifact"}' >"$T/text.llm"
fatal_case "text.llm" -q --arch $ARCH "$T/text.llm" -o "$T/x"
"$BUILD" -q --arch $ARCH "$M" -o "$T/e1.engine" || fail "build for sm_90"
fatal_case "already an engine" -q --arch $ARCH "$T/e1.engine" -o "$T/x"
fatal_case "nosuchdir" -q --arch $ARCH "$M" -o "$T/nosuchdir/e.engine"
# the output is checked before the input is read (or a GPU measured): with
# a missing input too, the error names the output
fatal_case "unable to create '$T/nosuchdir/e.engine'" -q --arch $ARCH "$T/nosuch.llm" -o "$T/nosuchdir/e.engine"
fatal_case "unable to create '$T': it is a folder" -q --arch $ARCH "$T/nosuch.llm" -o "$T"
[ ! -e "$T/x" ] && ok "fatal errors wrote nothing" || fail "a fatal error left '$T/x'"
if [ $have_gpu = 1 ]; then
    fatal_case "build on a GPU of that architecture" -q --arch sm_11 "$M" -o "$T/x"
fi
MAN=$S/man/llm-build.1.scd
missing=""
for opt in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
    grep -q -- "\*$opt\*" "$MAN" || missing="$missing $opt"
done
[ -z "$missing" ] && ok "every --help option is in the man page" || fail "not in man page:$missing"
for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES; do
    grep -q "^# $s\$" "$MAN" || fail "man page has no $s section"
done
grep -q '^\*llm-build\* \[_OPTIONS_\] _ARTIFACT_ \[\*-o\* _ENGINE_\]' "$MAN" \
    && ok "man page sections and synopsis match --help" || fail "man page synopsis"

# ---- 2. engines ----------------------------------------------------------------------------
"$INFO" --verify --no-tensors "$T/e1.engine" >"$T/info" 2>&1 \
    && grep -q "^engine: $ARCH (" "$T/info" \
    && grep -q '^  limits: batch 256, tokens per step 8192, context 256, kv bf16' "$T/info" \
    && grep -q 'mlp.fc_gate = mlp.fc rows then mlp.gate rows' "$T/info" \
    && grep -q '^verify: ok' "$T/info" && grep -q "^  2. llm-build .*--arch $ARCH" "$T/info" \
    && ok "llm-info: $(grep '^engine:' "$T/info")" || fail "llm-info engine section: $(cat "$T/info")"
# an architecture suffix (sm_90a: arch-specific features) is kept through
# the build's report, the engine's target and its provenance
if [ $have_gpu = 0 ]; then
    "$BUILD" --arch sm_90a "$M" -o "$T/e90a.engine" 2>"$T/e90a.err" \
        && grep -q "engine for sm_90a" "$T/e90a.err" \
        && "$INFO" --no-tensors "$T/e90a.engine" >"$T/info90a" \
        && grep -q '^engine: sm_90a (' "$T/info90a" && grep -q '^  2. llm-build .*--arch sm_90a' "$T/info90a" \
        && ok "--arch sm_90a: reported, stored and recorded as sm_90a" \
        || fail "--arch sm_90a: $(cat "$T/e90a.err") $(grep -e '^engine' -e 'llm-build' "$T/info90a" 2>/dev/null)"
fi
"$INFO" --json --no-tensors "$T/e1.engine" >"$T/info.json" \
    && grep -q '"compute_dtype": "bf16"' "$T/info.json" && grep -q "\"arch\": \"$ARCH\"" "$T/info.json" \
    && ok "llm-info --json carries the engine member" || fail "llm-info --json"
for f in llama3-f32 qwen2-f32 mistral-bf16 llama2-f16; do
    [ -f "$FIX/$f/config.json" ] || continue
    "$CONV" -q "$FIX/$f" -o "$T/$f.llm" || { fail "$f: llm-convert"; continue; }
    for dt in bf16 f16 f32; do
        if "$BUILD" -q --arch $ARCH --dtype $dt --max-batch 8 --max-tokens 64 --block-size 16 \
            --graph-batch-sizes 1,2,4,8 "$T/$f.llm" -o "$T/$f-$dt.engine" \
            && "$CMP" "$T/$f.llm" "$T/$f-$dt.engine" >"$T/cmp.log"; then
            ok "$f -> $dt: $(cat "$T/cmp.log")"
        else
            fail "$f -> $dt: $(cat "$T/cmp.log" 2>/dev/null)"
        fi
    done
done
"$INFO" --no-tensors "$T/llama3-f32-bf16.engine" | grep -q 'graphs 1,2,4,8' \
    && ok "graph batch sizes recorded" || fail "graph batch sizes"
if [ $have_gpu = 0 ]; then
    "$BUILD" -q --arch $ARCH "$M" -o "$T/e2.engine" && cmp -s "$T/e1.engine" "$T/e2.engine" \
        && ok "two builds: the same bytes" || fail "two builds differ"
    "$BUILD" -q --arch $ARCH "$M" >"$T/e3.engine" && cmp -s "$T/e1.engine" "$T/e3.engine" \
        && ok "to standard output: the same bytes" || fail "stdout differs"
fi
cat "$M" | "$BUILD" -q --arch $ARCH - >"$T/e4.engine" \
    && "$INFO" "$T/e1.engine" | sed -n '/^tensors:/,/^total/p' >"$T/t1" \
    && "$INFO" "$T/e4.engine" | sed -n '/^tensors:/,/^total/p' >"$T/t4" && cmp -s "$T/t1" "$T/t4" \
    && "$INFO" --no-tensors "$T/e4.engine" | grep -q '^     input -, ' \
    && ok "from a pipe: the same tensors, input recorded as '-'" || fail "pipe build"
"$CONV" "$FIX/llama3-f32" 2>/dev/null | "$BUILD" -q --arch $ARCH - | "$INFO" --verify - >"$T/pp" \
    && grep -q '^verify: ok' "$T/pp" && ok "llm-convert | llm-build | llm-info --verify" \
    || fail "pipeline"
"$BUILD" -v --arch $ARCH "$M" -o "$T/e5.engine" 2>"$T/v.err" \
    && grep -q 'mlp.fc_gate.weight bf16 \[320, 64\]' "$T/v.err" \
    && grep -q "wrote '.*e5.engine': engine for $ARCH, bf16, 21 tensors" "$T/v.err" \
    && ok "-v: $(tail -1 "$T/v.err")" || fail "-v: $(cat "$T/v.err")"

# ---- 3. llm-run ------------------------------------------------------------------------------
printf '%s\n' '{"id": 1, "prompt": "hello world", "max_tokens": 12}' \
    '{"id": 2, "prompt": "the quick brown fox", "max_tokens": 20, "temperature": 0.8, "seed": 3}' \
    '{"id": 3, "input_ids": [1, 40, 41, 42], "max_tokens": 16, "logprobs": 2}' >"$T/in.jsonl"
same_answers() { # label artifact engine
    "$RUN" -q --device cpu --threads 2 --ordered "$2" "$T/in.jsonl" -o "$T/a.out" \
        && "$RUN" -q --device cpu --threads 2 --ordered "$3" "$T/in.jsonl" -o "$T/b.out" \
        && [ "$(grep -c '"output_ids"' "$T/a.out")" = 3 ] && cmp -s "$T/a.out" "$T/b.out" \
        && ok "$1: the same 3 answers" || fail "$1: answers differ"
}
same_answers "llama3 f32 artifact vs f32 engine" "$T/llama3-f32.llm" "$T/llama3-f32-f32.engine"
"$CONV" -q --dtype bf16 "$FIX/llama3-f32" -o "$T/m-bf16.llm"
same_answers "llama3 bf16 artifact vs bf16 engine from f32" "$T/m-bf16.llm" "$T/llama3-f32-bf16.engine"
same_answers "qwen2 f32 artifact vs f32 engine" "$T/qwen2-f32.llm" "$T/qwen2-f32-f32.engine"
same_answers "mistral bf16 artifact vs bf16 engine" "$T/mistral-bf16.llm" "$T/mistral-bf16-bf16.engine"
# a quantized artifact: codes and their scales pass through as stored, fc and
# gate stay apart, and the engine answers as the artifact
for mode in w8a16 "w4a16 --group-size 32" fp8 int8-sq; do
    tag=${mode%% *}
    if ! "$B/cmd/llm-quantize" -q -m $mode --no-eval --device cpu "$T/llama3-f32.llm" \
        -o "$T/q-$tag.llm" 2>"$T/err" ||
        ! "$BUILD" -q --arch $ARCH --dtype f32 "$T/q-$tag.llm" -o "$T/q-$tag.engine" 2>>"$T/err"; then
        fail "$tag: quantize or build: $(head -c 300 "$T/err")"
        continue
    fi
    case $tag in w8a16 | int8-sq) code=i8 ;; w4a16) code=i4 ;; fp8) code=f8e4m3 ;; esac
    "$INFO" --tensors "$T/q-$tag.engine" >"$T/qi" 2>&1
    if grep -Eq "^ *$code +\[.*layers\.0\.attention\.qkv\.weight" "$T/qi" &&
        grep -Eq '^ *f32 .*layers\.0\.attention\.qkv\.(weights_scaling_factor|per_channel_scale)' "$T/qi" &&
        grep -q 'layers\.0\.mlp\.gate\.weight' "$T/qi" && ! grep -q 'fc_gate' "$T/qi"; then
        ok "$tag engine: $code codes and f32 scales as stored, fc and gate apart"
    else
        fail "$tag engine tensors: $(grep -E 'qkv|fc_gate' "$T/qi" | head -3)"
    fi
    same_answers "llama3 $tag artifact vs f32 engine" "$T/q-$tag.llm" "$T/q-$tag.engine"
done
# experts keep their fc and gate apart in an engine (a fused fc_gate left
# the experts' mlp.fc unbound); the engine answers as transformers did
"$CONV" -q "$FIX/mixtral" -o "$T/mixtral.llm" && "$BUILD" -q --arch $ARCH --dtype f32 --max-seq-len 256 \
    "$T/mixtral.llm" -o "$T/mixtral.engine" || fail "mixtral: convert or build"
"$B/tests/engine/run-golden" input "$FIX/mixtral/reference.json" >"$T/mx.jsonl"
"$RUN" -q --device cpu --threads 2 "$T/mixtral.engine" "$T/mx.jsonl" -o "$T/mx.out" \
    && "$B/tests/engine/run-golden" check "$FIX/mixtral/reference.json" "$T/mx.out" >"$T/mx.log" \
    && ok "mixtral f32 engine on the cpu: $(tail -1 "$T/mx.log")" \
    || fail "mixtral engine: $(grep -m1 FAIL "$T/mx.log" 2>/dev/null)"
if [ $have_gpu = 0 ]; then
    echo '{"prompt": "x"}' | "$RUN" --device cuda "$T/e1.engine" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] && grep -q '^llm-run: .*\(no CUDA device\|built without CUDA\)' "$T/err" \
        && ok "llm-run --device cuda without a GPU: $(cat "$T/err")" \
        || fail "llm-run --device cuda: exit $rc, $(cat "$T/err")"
    echo '{"id": 1, "prompt": "hello", "max_tokens": 4}' | "$RUN" -q "$T/e1.engine" >"$T/out" \
        && grep -q '"completion_tokens":4' "$T/out" && ok "llm-run --device auto: the engine runs on the cpu" \
        || fail "llm-run auto on an engine"
fi

# ---- 4. nothing left behind -------------------------------------------------------------------
mkdir -p "$T/k"
"$BUILD" -q --arch $ARCH "$T/cut.llm" -o "$T/k/e.engine" 2>/dev/null
[ -z "$(ls -A "$T/k")" ] && ok "bad input: the output folder stays empty" || fail "bad input left: $(ls -A "$T/k")"
size=$(stat -c %s "$M")
mkfifo "$T/fifo"
for sig in TERM INT HUP KILL; do
    # half the artifact through a FIFO that then stays open and silent: llm-build is mid-way
    "$BUILD" -q --arch $ARCH - -o "$T/k/e.engine" <"$T/fifo" 2>"$T/k.err" &
    pid=$!
    exec 3>"$T/fifo"
    head -c $((size / 2)) "$M" >&3
    for _ in $(seq 1 400); do # CUDA start-up and measuring come first where there is a GPU
        [ -n "$(ls -A "$T/k")" ] && break
        sleep 0.05
    done
    started=$(ls -A "$T/k" | head -1)
    kill -$sig $pid
    wait $pid 2>/dev/null
    exec 3>&-
    left=$(ls -A "$T/k")
    if [ "$sig" = KILL ]; then
        [ -n "$started" ] && [ ! -e "$T/k/e.engine" ] \
            && ok "SIGKILL mid-way: the engine never appears (temporary '$started' cannot be removed)" \
            || fail "SIGKILL: started '$started', left '$left'"
        rm -f "$T/k"/.e.engine.tmp-*
    else
        [ -n "$started" ] && [ -z "$left" ] && ok "SIG$sig mid-way (temporary '$started' seen): nothing left" \
            || fail "SIG$sig: started '$started', left '$left'"
    fi
done

echo "$fails failures"
[ $fails = 0 ]
