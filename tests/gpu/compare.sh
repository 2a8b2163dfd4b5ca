#!/bin/bash
# compare.sh - two builds of llm side by side on one GPU: identical answers,
# decode and offline speed, in the same run on the same machine.
#
#   tests/gpu/compare.sh OLD_BIN_DIR NEW_BIN_DIR [stage ...]
#       stages: answers decode offline (default: all)
#
# Each BIN_DIR holds llm-run, llm-convert, llm-bench and bench_gpu_model
# (tests/gpu/run.sh pack makes one).  answers: greedy llm-run on the GPU
# with both builds over the bundled model and a converted fixture; the
# output lines must be identical.  decode: bench_gpu_model's batch-1
# decode per model shape (LLM_BENCH_ONLY=decode), each build three times,
# alternating.  offline: llm-bench throughput 128/128 on a random
# Llama-2-7B (f16, converted once), -r 3.  Results under $OUT/compare,
# and a before/after table printed last.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OLD=$1 NEW=$2
shift 2
STAGES=${*:-answers decode offline}
OUT=${OUT:-$ROOT/gpu-out}/compare
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
declare -A T
fail=0

for st in $STAGES; do
    case $st in
    answers)
        fx=/dev/shm/compare-llama3-bf16.llm   # (kept out of $OUT: only small files come back)
        "$NEW/llm-convert" -q "$ROOT/tests/fixtures/llama3-bf16" -o "$fx" || fail=1
        for v in old new; do
            b=$OLD; [ $v = new ] && b=$NEW
            "$b/llm-run" -q --device cuda "$ROOT/lib/data/default.llm" "$ROOT/lib/data/prompts.jsonl" \
                > "$OUT/answers-default-$v.jsonl" 2> "$OUT/answers-$v.err"
            "$b/llm-run" -q --device cuda "$fx" "$ROOT/lib/data/prompts.jsonl" \
                > "$OUT/answers-llama3-$v.jsonl" 2>> "$OUT/answers-$v.err"
        done
        for m in default llama3; do
            if cmp -s "$OUT/answers-$m-old.jsonl" "$OUT/answers-$m-new.jsonl" &&
               [ -s "$OUT/answers-$m-new.jsonl" ]; then
                T[answers-$m]="identical ($(wc -l < "$OUT/answers-$m-new.jsonl") answers)"
            else
                T[answers-$m]="DIFFERENT"; fail=1
                diff "$OUT/answers-$m-old.jsonl" "$OUT/answers-$m-new.jsonl" | head -5
            fi
        done
        ;;
    decode)
        for shape in ${COMPARE_SHAPES:-llama2-7b llama3-8b}; do
            for rep in 1 2 3; do
                for v in old new; do
                    b=$OLD; [ $v = new ] && b=$NEW
                    LLM_BENCH_SHAPE=$shape LLM_BENCH_ONLY=decode timeout 300 \
                        "$b/bench_gpu_model" "$OUT/decode-$shape-$v-$rep.json" bf16 \
                        > "$OUT/decode-$shape-$v-$rep.log" 2>&1 || fail=1
                done
            done
        done
        ;;
    offline)
        m=/dev/shm/llama2-7b-random.llm
        if [ ! -s "$m" ]; then
            "$NEW/llm-convert" -q --random "$ROOT/bench/configs/llama-2-7b.json" --dtype f16 \
                -o "$m" || fail=1
        fi
        for v in old new; do
            b=$OLD; [ $v = new ] && b=$NEW
            # (the format option was --output-format before it became -f/--format)
            fmt=(-f json)
            "$b/llm-bench" -h 2>&1 | grep -q -- '--output-format' && fmt=(--output-format json)
            timeout 400 "$b/llm-bench" throughput --device cuda --num-requests 448 --max-seqs 448 \
                --input-len 128 --output-len 128 -r 3 -w 1 "${fmt[@]}" "$m" \
                > "$OUT/offline-$v.json" 2> "$OUT/offline-$v.log" || fail=1
        done
        ;;
    *) echo "unknown stage $st"; exit 2 ;;
    esac
done

{
echo
echo "================ before / after (same GPU, same run) ================"
for k in "${!T[@]}"; do printf "%-22s %s\n" "$k" "${T[$k]}"; done
COMPARE_SHAPES=${COMPARE_SHAPES:-llama2-7b llama3-8b} python3 - "$OUT" <<'EOF'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
def stats(xs):
    return "%.1f (%.1f-%.1f, n=%d)" % (statistics.mean(xs), min(xs), max(xs), len(xs)) if xs else "-"
for shape in os.environ["COMPARE_SHAPES"].split():
    row = []
    for v in ("old", "new"):
        xs = []
        for f in sorted(glob.glob(os.path.join(out, "decode-%s-%s-*.log" % (shape, v)))):
            m = re.findall(r"^decode batch 1 \(ctx[^:]*: ([0-9.]+) tok/s", open(f).read(), re.M)
            if m: xs.append(float(m[-1]))
        row.append(stats(xs))
    print("%-22s old %-28s new %s" % ("decode " + shape, row[0], row[1]))
row = []
for v in ("old", "new"):
    try:
        j = json.load(open(os.path.join(out, "offline-%s.json" % v)))
        f = j["results"][0]["figures"]["output_tokens_per_s"]
        row.append(stats(f["samples"]))
    except Exception as e:
        row.append("- (%s)" % e.__class__.__name__)
print("%-22s old %-28s new %s" % ("offline 128/128 tok/s", row[0], row[1]))
EOF
} | tee "$OUT/table.txt"
exit $fail
