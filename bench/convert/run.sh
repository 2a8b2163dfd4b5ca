#!/bin/bash
# run.sh - llm-convert throughput and peak memory on a multi-GB checkpoint.
#
# Writes a Hugging Face checkpoint with random weights in the shapes of a
# real model (mkckpt --alias: about one tensor of memory to write it), then
# times `llm-convert CKPT -o OUT` (and, with BENCH_PIPE=1, into a pipe;
# with BENCH_COMPRESS=LEVEL, with zstd) under /usr/bin/time, and checks that
# the converter's peak resident set stays under 256 MiB + the largest
# tensor.  Prints one JSON line per run; exits 1 if the bound is broken.
#
#   bench/convert/run.sh [CONFIG_JSON]        (default: llama-3.2-3b.json, 6.4 GB bf16)
#   env: LLM_BUILDDIR (default ./build), BENCH_TMPDIR (default $TMPDIR or /tmp),
#        BENCH_SHARDS (default 2), BENCH_PIPE=1, BENCH_COMPRESS=LEVEL, BENCH_KEEP=1
#
# Figures are for a warm page cache (the checkpoint was just written).  The
# same bytes copied with cat(1) into the same folder give copy_gb_per_s, the
# ceiling the machine's write path sets.
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${LLM_BUILDDIR:-$here/../../build}
CONV=$B/cmd/llm-convert
INFO=$B/cmd/llm-info
MK=$B/tests/golden/mkckpt
cfg=${1:-$here/llama-3.2-3b.json}
for x in "$CONV" "$INFO" "$MK" /usr/bin/time; do
    [ -x "$x" ] || { echo "run.sh: '$x' not found (build first; set LLM_BUILDDIR)" >&2; exit 1; }
done
T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bench-convert-XXXXXX")
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$T"' EXIT

"$MK" --alias --shards "${BENCH_SHARDS:-2}" "$cfg" "$T/ckpt" 2>"$T/mk.log" ||
    { cat "$T/mk.log" >&2; exit 1; }
in_bytes=$(cat "$T"/ckpt/*.safetensors | wc -c)

# one run: label, then the command's output redirection as a shell string
measure() {
    local label=$1 cmd=$2
    /usr/bin/time -f "%e %M" -o "$T/time" bash -c "$cmd" 2>"$T/err" ||
        { echo "run.sh: $label failed: $(cat "$T/err")" >&2; return 1; }
    read -r secs rss_kb <"$T/time"
}

status=0
report() { # label extra-json
    local label=$1 extra=$2
    "$INFO" --json --no-tensors "$T/out.llm" >/dev/null || { echo "run.sh: output unreadable" >&2; exit 1; }
    local largest ntens
    largest=$("$INFO" "$T/out.llm" | awk '/^  [a-z0-9]+ +\[/{print $(NF-3)}' | sort -n | tail -1)
    ntens=$("$INFO" --json --no-tensors "$T/out.llm" | sed -n 's/^ *"tensor_count": \([0-9]*\),*$/\1/p')
    local limit_kb=$((256 * 1024 + largest / 1024))
    local ok=true
    [ "$rss_kb" -lt "$limit_kb" ] || { ok=false; status=1; }
    awk -v l="$label" -v c="$(basename "$cfg")" -v ib="$in_bytes" -v n="$ntens" \
        -v lg="$largest" -v s="$secs" -v r="$rss_kb" -v lim="$limit_kb" -v ok="$ok" \
        -v ob="$(stat -c %s "$T/out.llm")" -v x="$extra" -v cs="$copy_secs" 'BEGIN {
        printf "{\"bench\": \"convert\", \"mode\": \"%s\", \"config\": \"%s\", \"input_bytes\": %.0f, \"output_bytes\": %.0f, \"tensors\": %d, \"largest_tensor_bytes\": %.0f, \"seconds\": %.3f, \"gb_per_s\": %.3f, \"copy_gb_per_s\": %.3f, \"peak_rss_mb\": %.1f, \"rss_limit_mb\": %.1f, \"rss_ok\": %s%s}\n",
            l, c, ib, ob, n, lg, s, (s > 0 ? ib / s / 1e9 : 0), (cs > 0 ? ib / cs / 1e9 : 0), r / 1024, lim / 1024, ok, x }'
}

# baseline: copying the checkpoint's bytes into one file in the same folder
measure copy "cat '$T'/ckpt/*.safetensors > '$T/copy'" && copy_secs=$secs
rm -f "$T/copy"

measure file "'$CONV' -q '$T/ckpt' -o '$T/out.llm'" && report file ""
if [ "${BENCH_PIPE:-0}" = 1 ]; then
    measure pipe "'$CONV' -q '$T/ckpt' | cat > '$T/out.llm'" && report pipe ""
fi
if [ -n "${BENCH_COMPRESS:-}" ]; then
    measure zstd "'$CONV' -q --compress=$BENCH_COMPRESS '$T/ckpt' -o '$T/out.llm'" &&
        report "zstd-$BENCH_COMPRESS" ""
fi
exit $status
