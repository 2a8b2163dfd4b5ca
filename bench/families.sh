#!/bin/bash
# families.sh - every family of the registry in a published shape, random
# weights made on the GPU ("random:CONFIG.json": no file, no host copy),
# through llm-bench: offline throughput at ISL/OSL 128/128 and batch-1
# latency at 128/128 (2 requests one after the other), each 3 timed
# repetitions after a warm-up.  One JSON
# per cell under $OUT (default bench/results/families), a table last.
#
#   bench/families.sh BIN_DIR        (llm-bench there)
#   FAMILIES="mixtral-8x7b gpt2-xl" bench/families.sh BIN_DIR   a subset
#
# The ceilings are probed once, by the first cell, and handed to the others
# (--peak-bw/--peak-flops), so every cell's fractions use the same numbers.
# Configs: bench/configs/ (written from the published config.json values)
# and tests/formats/hub/ (the published files themselves).
set -u
B=${1:?usage: families.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
hub=$src/tests/formats/hub
out=${OUT:-$here/results}/families
mkdir -p "$out"
# name  config  offline requests (= 2 x sequences in flight)
table="
mixtral-8x7b    $hub/mistralai--Mixtral-8x7B-v0.1/config.json                   512
qwen3-30b-a3b   $here/configs/qwen3-30b-a3b.json                                256
gpt2-xl         $hub/openai-community--gpt2-xl/config.json                      1024
gpt-j-6b        $hub/EleutherAI--gpt-j-6b/config.json                           512
pythia-12b      $hub/OpenAssistant--oasst-sft-4-pythia-12b-epoch-3.5/config.json 512
falcon-7b       $hub/tiiuae--falcon-7b/config.json                              512
falcon-40b      $hub/tiiuae--falcon-40b/config.json                             512
mpt-7b          $here/configs/mpt-7b.json                                       512
bloom-7b1       $here/configs/bloom-7b1.json                                    512
opt-6.7b        $here/configs/opt-6.7b.json                                     512
gemma-7b        $here/configs/gemma-7b.json                                     512
gemma-2-9b      $here/configs/gemma-2-9b.json                                   512
phi-3-mini      $hub/microsoft--Phi-3-mini-4k-instruct/config.json              512
qwen3-8b        $here/configs/qwen3-8b.json                                     512
stable-code-3b  $hub/stabilityai--stable-code-3b/config.json                    1024
starcoder2-7b   $here/configs/starcoder2-7b.json                                512
qwen2.5-7b      $here/configs/qwen2.5-7b.json                                   512
mistral-7b      $hub/mistralai--Mistral-7B-v0.1/config.json                     512
"
want=${FAMILIES:-$(echo "$table" | awk 'NF {print $1}')}
peaks=()
fails=0
for name in $want; do
    line=$(echo "$table" | awk -v n="$name" '$1 == n')
    [ -n "$line" ] || { echo "families.sh: no family '$name'" >&2; fails=$((fails + 1)); continue; }
    read -r _ cfg nreq <<<"$line"
    echo "== $name" >&2
    if ! "$B/llm-bench" throughput "random:$cfg" --device cuda --input-len 128 --output-len 128 \
        --num-requests "$nreq" --max-seqs $((nreq / 2)) -r 3 -w 1 "${peaks[@]}" -f json \
        -o "$out/$name-tp-128-128.json"; then
        echo "families.sh: $name offline failed" >&2
        fails=$((fails + 1))
        continue
    fi
    if [ ${#peaks[@]} -eq 0 ]; then
        read -r bw fl < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["ceilings"]; print(c["mem_bw"], c["flops"])' "$out/$name-tp-128-128.json")
        peaks=(--no-probe --peak-bw "$bw" --peak-flops "$fl")
    fi
    if ! "$B/llm-bench" latency "random:$cfg" --device cuda --input-len 128 --output-len 128 \
        --num-requests 2 -r 3 -w 1 "${peaks[@]}" -f json -o "$out/$name-lat-128-128.json"; then
        echo "families.sh: $name batch 1 failed" >&2
        fails=$((fails + 1))
    fi
done
python3 - "$out" $want <<'PYEOF' | tee "$out/table.md"
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
def fig(doc, key):
    f = doc["results"][0]["figures"][key]
    return f["mean"], f["stddev"]
print("| family | arch | params | offline 128/128 output tok/s | batch-1 tok/s | batch-1 bandwidth / copy |")
print("|---|---|---:|---:|---:|---:|")
for n in names:
    row = [n, "-", "-", "-", "-", "-"]
    try:
        tp = json.load(open(os.path.join(out, n + "-tp-128-128.json")))
        row[1] = tp["model"]["arch"]
        row[2] = "%.2f B" % (tp["model"]["n_params"] / 1e9)
        row[3] = "%.0f ± %.0f" % fig(tp, "output_tokens_per_s")
        lat = json.load(open(os.path.join(out, n + "-lat-128-128.json")))
        row[4] = "%.1f ± %.1f" % fig(lat, "output_tokens_per_s")
        row[5] = "%.1f%%" % (100 * fig(lat, "mem_bw_fraction")[0])
    except (OSError, KeyError, ValueError, IndexError):
        pass
    print("| " + " | ".join(row) + " |")
PYEOF
[ "$fails" -eq 0 ]
