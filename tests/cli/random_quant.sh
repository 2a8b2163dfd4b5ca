#!/bin/bash
# random_quant.sh - a synthetic quantized model, "random:CONFIG.json:MODE",
# is what llm-quantize -m MODE writes: for every mode (and a mixture of
# experts, the tiny Mixtral, in most) the same tensor names,
# dtypes and shapes and the same quantization section as llm-quantize's
# output for a checkpoint of that config (and, where no calibration is
# needed, the same tensor order as llm-quantize of the --random artifact);
# `llm-convert --random CONFIG.json:MODE` writes it out; llm-run answers the
# same token-id prompts alike from the spec and from that file, greedy and
# sampled, with finite log-probabilities; a bad mode, option or group size
# is refused by llm-run and llm-bench in one line, exit 1.
#
#   tests/cli/random_quant.sh BIN_DIR    (llm-convert, llm-quantize, llm-info,
#                                        llm-run and llm-bench there; LLM_DEVICE
#                                        picks the device, default cpu; modes the
#                                        device does not run are skipped there)
set -u
B=${1:?usage: random_quant.sh BIN_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEV=${LLM_DEVICE:-cpu}
T=$(mktemp -d "${TMPDIR:-/tmp}/random-quant-XXXXXX")
trap 'rm -rf "$T"' EXIT
FIX=$ROOT/tests/fixtures/llama3-f32
CFG=$FIX/config.json
n=0 fails=0
ok() { n=$((n + 1)); echo "ok: $*"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

for i in 1 2 3; do
    printf '{"input_ids": [%d, %d, 7, 11, 13], "max_tokens": 10, "temperature": %d, "seed": %d, "logprobs": 3}\n' \
        $((i * 3)) $((i + 40)) $((i % 2)) "$i"
done >"$T/p.jsonl"

# name dtype shape of every tensor (sorted: 1, in file order: 0), and the section
layout() {
    "$B/llm-info" --json --tensors "$1" | python3 -c '
import json, sys
j = json.load(sys.stdin)
t = [(x["name"], x["dtype"], x["shape"]) for x in j["tensors"]]
if sys.argv[1] == "1": t.sort()
print(json.dumps(j["metadata"].get("quantization"), sort_keys=True))
for x in t: print(*x)' "$2"
}

# check FIXTURE SPEC...: each spec against llm-quantize of that fixture
check() {
    local fix=$1 cfg=$1/config.json tag=$(basename "$1") spec
    shift
    if ! "$B/llm-convert" -q "$fix" -o "$T/parent.llm" 2>"$T/err" ||
        ! "$B/llm-convert" -q --random "$cfg" -o "$T/dense.llm" 2>>"$T/err"; then
        bad "$tag: converting the parent: $(cat "$T/err")"
        return
    fi
    for spec in "$@"; do
        # the same as llm-quantize flags
        args=()
        IFS=, read -ra items <<<"$spec"
        for it in "${items[@]}"; do
            case $it in
            group-size=*) args+=(--group-size "${it#*=}") ;;
            act=*) args+=(--act "${it#*=}") ;;
            kv=*) args+=(--kv "${it#*=}") ;;
            *) args+=(-m "$it") ;;
            esac
        done
        if ! "$B/llm-quantize" -q --no-eval "${args[@]}" "$T/parent.llm" -o "$T/q.llm" 2>"$T/err" ||
            ! "$B/llm-convert" -q --random "$cfg:$spec" -o "$T/r.llm" 2>>"$T/err"; then
            bad "$tag $spec: $(head -c 300 "$T/err")"
            continue
        fi
        layout "$T/q.llm" 1 >"$T/q.lay"
        layout "$T/r.llm" 1 >"$T/r.lay"
        if cmp -s "$T/q.lay" "$T/r.lay"; then
            ok "$tag $spec: $(($(wc -l <"$T/r.lay") - 1)) tensors and the quantization section as llm-quantize's"
        else
            bad "$tag $spec: layout differs from llm-quantize's"
            diff "$T/q.lay" "$T/r.lay" | head -6
        fi
        case $spec in
        fp8-pc | w8a16 | w4a16*)
            "$B/llm-quantize" -q --no-eval "${args[@]}" "$T/dense.llm" -o "$T/qd.llm" 2>"$T/err"
            if layout "$T/qd.llm" 0 | cmp -s - <(layout "$T/r.llm" 0); then
                ok "$tag $spec: tensor order as llm-quantize of the --random artifact"
            else
                bad "$tag $spec: tensor order differs: $(head -c 200 "$T/err")"
            fi
            ;;
        esac
        if ! "$B/llm-info" "$T/r.llm" | grep -q "runs on:.*\b$DEV\b"; then
            echo "skip: $tag $spec: $DEV does not run it"
            continue
        fi
        if ! "$B/llm-run" -q --device "$DEV" "random:$cfg:$spec" "$T/p.jsonl" >"$T/a.out" 2>"$T/err" ||
            ! "$B/llm-run" -q --device "$DEV" "$T/r.llm" "$T/p.jsonl" >"$T/b.out" 2>>"$T/err"; then
            bad "$tag $spec: llm-run: $(head -c 300 "$T/err")"
        elif [ "$(grep -c '"output_ids":\[[0-9]' "$T/a.out")" -ne 3 ] ||
            grep -qiE '[:,[]-?(nan|inf)' "$T/a.out"; then
            bad "$tag $spec: answers: $(head -c 300 "$T/a.out")"
        elif ! cmp -s "$T/a.out" "$T/b.out"; then
            bad "$tag $spec: random:...:$spec answers unlike its converted file"
            diff "$T/a.out" "$T/b.out" | head -4
        else
            ok "$tag $spec: llm-run on $DEV answers 3 of 3 alike, finite"
        fi
    done
}

check "$FIX" fp8 fp8-pc int8-sq int8-sq,act=static w8a16 w4a16,group-size=32 \
    int4-awq,group-size=32 w4a8-awq,group-size=32 w8a16,kv=int8 kv=fp8
# expert stacks: each side tensor [experts][...], as llm-quantize stacks them
check "$ROOT/tests/fixtures/mixtral" fp8 fp8-pc int8-sq w8a16,kv=int8 w4a16,group-size=32 \
    int4-awq,group-size=32 w4a8-awq,group-size=32

# refused in one line naming what is wrong, by llm-run and llm-bench alike
for spec in "fp9:unknown quantization mode 'fp9'" "w4a16:group size 128 does not divide" \
    "fp8,group-size=32:group-size is for w4a16" "w8a16,act=static:act is for int8-sq" \
    "w4a16,group-size=7:group-size=7 is not an even" "fp8,w8a16:two quantization modes" \
    "fp8,kv=fp16:kv=fp16 is not fp8 or int8" "fp8,:an empty quantization item"; do
    s=${spec%%:*} want=${spec#*:}
    for tool in "llm-run -q --device $DEV" "llm-bench throughput --device $DEV --num-requests 1"; do
        set -- $tool
        t=$1
        shift
        if [ "$t" = llm-run ]; then
            "$B/$t" "$@" "random:$CFG:$s" "$T/p.jsonl"
        else
            "$B/$t" "$@" "random:$CFG:$s"
        fi >"$T/out" 2>"$T/err"
        rc=$?
        if [ "$rc" = 1 ] && [ "$(grep -c '' "$T/err")" = 1 ] && grep -qF "$want" "$T/err" &&
            grep -q "^$t: " "$T/err"; then
            ok "$t :$s: $(cat "$T/err")"
        else
            bad "$t :$s: exit $rc: $(head -c 300 "$T/err")"
        fi
    done
done
echo "random quantized models on $DEV: $n checks, $fails failed"
[ "$fails" -eq 0 ]
