#!/bin/bash
# run_matrix.sh - the standard llm-bench matrix, one JSON result per cell.
#
#   bench/run_matrix.sh gpu [BUILD_DIR]   Llama-2-7B and Llama-3.1-8B shapes
#       (bench/configs/*.json, random weights from llm-convert --random):
#       offline throughput at ISL/OSL 128/128, 128/2048, 2048/128, 2048/2048
#       (TensorRT-LLM's published grid), batch-1 latency at 128/128, and a
#       llama-bench pp512/tg128 sweep.
#   bench/run_matrix.sh cpu [BUILD_DIR]   the bundled lib/data/default.llm on
#       the CPU backend: the same kinds of runs at lengths its 512-token
#       context holds, and the bundled prompts (lib/data/prompts.jsonl).
#
# Results go to $OUT/$TAG/<model>-<test>.json (default bench/results/<tag>),
# with a Markdown summary of all of them in $OUT/$TAG/summary.md.  Random
# models are written to $WORK (default BUILD_DIR/bench-models) once and
# reused.  Environment knobs: REPS (timed repetitions; default 3 on the CPU,
# 1 on the GPU), TAG, OUT, WORK, CPU_MODEL (instead of default.llm), EXTRA
# (more llm-bench options, e.g. "--peak-bw 2.97T"), ONLY (a regular
# expression over cell names to run a subset).  The design choice: every cell is a separate llm-bench process
# whose JSON can be replayed and gated on by itself; nothing is aggregated
# but the summary, which is rendered from the JSON files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
what=${1:-}
build=${2:-$src/build}
bench=$build/cmd/llm-bench
conv=$build/cmd/llm-convert
[ -x "$bench" ] || { echo "run_matrix.sh: no llm-bench in '$build/cmd' (build it first)" >&2; exit 2; }
case "$what" in
gpu) reps=${REPS:-1}; tag=${TAG:-gpu}; device=cuda ;;
cpu) reps=${REPS:-3}; tag=${TAG:-cpu}; device=cpu ;;
*) echo "usage: bench/run_matrix.sh gpu|cpu [BUILD_DIR]" >&2; exit 2 ;;
esac
out=${OUT:-$here/results}/$tag
work=${WORK:-$build/bench-models}
only=${ONLY:-.}
mkdir -p "$out" "$work"
read -r -a extra <<<"${EXTRA:-}" || true

# cell NAME MODE MODEL OPTIONS...: one llm-bench run to $out/NAME.json
cell() {
    local name=$1 mode=$2 model=$3
    shift 3
    if ! [[ $name =~ $only ]]; then return 0; fi
    echo "== $name" >&2
    if ! "$bench" "$mode" "$model" --device "$device" -r "$reps" -f json -o "$out/$name.json" \
        "$@" "${extra[@]}"; then
        echo "run_matrix.sh: $name failed" >&2
        failed=$((failed + 1))
    fi
}
failed=0

if [ "$what" = gpu ]; then
    for m in llama-2-7b llama-3.1-8b; do
        [[ "$m-tp $m-lat $m-sweep" =~ $only ]] || continue
        model=$work/$m.llm
        if [ ! -s "$model" ]; then
            echo "== $m: random weights from bench/configs/$m.json" >&2
            "$conv" --random "$here/configs/$m.json" -o "$model"
        fi
        # enough to fill the engine for a while, few enough that a cell takes one or two
        # minutes on one H100.  In flight: Llama-2-7B's KV pool (512 KiB a token) holds
        # about 460 sequences of 256 tokens, so 512; Llama-3.1-8B's (128 KiB a token)
        # holds 1024 of them with room to spare.
        case $m in
        llama-2-7b) seqs=512 n2k=64 ;;
        *) seqs=1024 n2k=192 ;;
        esac
        tp=(throughput "$model" --max-seqs "$seqs")
        cell "$m-tp-128-128" "${tp[@]}" --input-len 128 --output-len 128 --num-requests $((2 * seqs))
        cell "$m-tp-128-2048" "${tp[@]}" --input-len 128 --output-len 2048 --num-requests 128
        cell "$m-tp-2048-128" "${tp[@]}" --input-len 2048 --output-len 128 --num-requests 256
        cell "$m-tp-2048-2048" "${tp[@]}" --input-len 2048 --output-len 2048 --num-requests "$n2k"
        cell "$m-lat-128-128" latency "$model" --input-len 128 --output-len 128 --num-requests 16
        cell "$m-sweep" sweep "$model" -p 512,2048 -n 128
    done
else
    model=${CPU_MODEL:-$src/lib/data/default.llm}
    [ -s "$model" ] || { echo "run_matrix.sh: no '$model' (the bundled model)" >&2; exit 1; }
    m=default
    cell "$m-tp-128-128" throughput "$model" --input-len 128 --output-len 128 --num-requests 64
    cell "$m-tp-32-448" throughput "$model" --input-len 32 --output-len 448 --num-requests 32
    cell "$m-tp-448-32" throughput "$model" --input-len 448 --output-len 32 --num-requests 64
    cell "$m-tp-256-256" throughput "$model" --input-len 256 --output-len 256 --num-requests 32
    cell "$m-tp-prompts" throughput "$model" --dataset "$src/lib/data/prompts.jsonl"
    cell "$m-lat-128-128" latency "$model" --input-len 128 --output-len 128 --num-requests 8
    cell "$m-sweep" sweep "$model" -p 128,448 -n 128
    cell "$m-batched" sweep "$model" --npp 128 --ntg 128 --npl 1,8,32
fi

summary=$out/summary.md
{
    echo "# llm-bench matrix: $tag"
    echo
    for f in "$out"/*.json; do
        [ -s "$f" ] || continue
        echo "### $(basename "$f" .json)"
        echo
        # the summary tables, not the table of every figure
        "$bench" show "$f" -f md | awk '/^\| test \|/ { on = ($0 !~ /\| figure \|/) }
                                        on && /^$/ { print ""; on = 0; next }
                                        on { print }'
        echo
    done
} >"$summary"
echo "run_matrix.sh: results in $out, summary in $summary; $failed cell(s) failed" >&2
[ "$failed" = 0 ]
