#!/bin/bash
# test_llm_quantize.sh - llm-quantize from the outside, on the bundled
# (trained) model: every mode writes an artifact that llm-run runs on the
# CPU and llm-info describes with its accuracy report; the report orders the
# modes as their precision does; bad input gets one line, the right exit
# status and no output file.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
Q=$B/cmd/llm-quantize
M=$S/lib/data/default.llm
T=$(mktemp -d "${TMPDIR:-/tmp}/test-quantize-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 fails=0
ok() { n=$((n + 1)); echo "ok: $*"; }
bad() { n=$((n + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

declare -A KLD
for mode in w8a16 fp8-pc fp8 "w4a16 --group-size 64"; do
    name=${mode%% *}
    if ! $Q -q -m $mode "$M" -o "$T/$name.llm" 2>"$T/err"; then
        bad "$mode: $(cat "$T/err")"
        continue
    fi
    info=$("$B/cmd/llm-info" "$T/$name.llm")
    rep=$(grep '^quantization report:' <<<"$info")
    k=$(sed -n 's/.*KLD mean \([0-9.]*\),.*/\1/p' <<<"$rep")
    [ -n "$k" ] && ok "$mode: $rep" || bad "$mode: no report in llm-info"
    KLD[$name]=$k
    # every mode runs on both backends
    on="cpu, cuda"
    grep -q "runs on: $on$" <<<"$info" && ok "$mode: runs on $on" ||
        bad "$mode: llm-info says '$(grep 'runs on' <<<"$info")'"
    grep -q 'llm-quantize .*-m '"$name" <<<"$info" &&
        ok "$mode: provenance names llm-quantize" ||
        bad "$mode: provenance"
    if "$B/cmd/llm-run" -q --device cpu "$T/$name.llm" "$S/lib/data/prompts.jsonl" >"$T/out" 2>"$T/err" &&
        [ "$(grep -c '"text"' "$T/out")" = 8 ]; then
        ok "$mode: llm-run answers 8 prompts"
    else
        bad "$mode: llm-run: $(head -c 300 "$T/err")"
    fi
done
# int8 weights lose the least, fp8 more, int4 the most
if [ -n "${KLD[fp8]:-}" ] && python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (a < b < c))" \
        "${KLD[w8a16]:-1}" "${KLD[fp8]}" "${KLD[w4a16]:-0}"; then
    ok "mean KLD w8a16 < fp8 (static activations) ${KLD[fp8]} < w4a16"
else
    bad "KLD of fp8 ${KLD[fp8]:-?} not between w8a16 and w4a16"
fi
if [ -n "${KLD[w8a16]:-}" ] && [ -n "${KLD[fp8-pc]:-}" ] && [ -n "${KLD[w4a16]:-}" ] &&
    python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (0 < a < b < c < 0.1))" \
        "${KLD[w8a16]}" "${KLD[fp8-pc]}" "${KLD[w4a16]}"; then
    ok "mean KLD w8a16 ${KLD[w8a16]} < fp8-pc ${KLD[fp8-pc]} < w4a16 ${KLD[w4a16]} < 0.1"
else
    bad "KLD order: w8a16 ${KLD[w8a16]:-?} fp8-pc ${KLD[fp8-pc]:-?} w4a16 ${KLD[w4a16]:-?}"
fi

# SmoothQuant's case: the same model with activation outliers (mk-outliers; its answers
# are bit for bit the parent's) - smoothing must beat plain per-tensor W8A8 by far
kld_of() { "$B/cmd/llm-info" "$1" | sed -n 's/^quantization report:.*KLD mean \([0-9.]*\),.*/\1/p'; }
if "$B/tests/quant/mk-outliers" "$M" "$T/outl.llm" 64 2>"$T/err" &&
    "$B/cmd/llm-run" -q --device cpu "$M" "$S/lib/data/prompts.jsonl" >"$T/a.out" &&
    "$B/cmd/llm-run" -q --device cpu "$T/outl.llm" "$S/lib/data/prompts.jsonl" >"$T/b.out" &&
    cmp -s "$T/a.out" "$T/b.out"; then
    ok "outlier model answers as its parent"
else
    bad "outlier model: $(head -c 300 "$T/err")"
fi
$Q -q -m int8-sq "$T/outl.llm" -o "$T/sq.llm" 2>"$T/err" || bad "int8-sq: $(cat "$T/err")"
$Q -q -m int8-sq --alpha none --act static "$T/outl.llm" -o "$T/pt.llm" 2>/dev/null ||
    bad "plain W8A8: exit $?"
$Q -q -m int8-sq --act static "$T/outl.llm" -o "$T/sqs.llm" 2>"$T/err" || bad "int8-sq static: $(cat "$T/err")"
ksq=$(kld_of "$T/sq.llm") kpt=$(kld_of "$T/pt.llm") ksqs=$(kld_of "$T/sqs.llm")
if python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (a * 50 < b and c * 20 < b and b > 0.1))" \
    "${ksq:-1}" "${kpt:-0}" "${ksqs:-1}"; then
    ok "outliers: int8-sq KLD $ksq (static $ksqs) vs plain per-tensor W8A8 $kpt"
else
    bad "outliers: int8-sq ${ksq:-?} (static ${ksqs:-?}) not far below plain W8A8 ${kpt:-?}"
fi
"$B/cmd/llm-info" "$T/sq.llm" | grep -q "runs on: cpu, cuda$" && ok "int8-sq (int8 activations) runs on both backends" ||
    bad "int8-sq: llm-info says '$("$B/cmd/llm-info" "$T/sq.llm" | grep 'runs on')'"
# the smoothing factors of qkv and of fc + gate (one s) folded into the norms before them
# (f32 norms, no smoother); attention.dense and mlp.proj, no norm before them, keep theirs;
# --no-fold keeps all 20
"$B/cmd/llm-info" "$T/sq.llm" >"$T/info"
if [ "$(grep -c 'smoother$' "$T/info")" = 8 ] &&
    [ "$(grep -c '\(attention.dense\|mlp.proj\).smoother$' "$T/info")" = 8 ] &&
    [ "$(grep -c 'f32 .*layers.[0-3].\(input\|post\)_layernorm.weight$' "$T/info")" = 8 ] &&
    grep -q 'llm-quantize .*-m int8-sq --alpha 0.5 --act dynamic --fold ' "$T/info"; then
    ok "int8-sq: factors folded into 8 norms, smoothers kept for the 8 products no norm feeds"
else
    bad "int8-sq: smoothers $(grep -c 'smoother$' "$T/info"), $(grep 'llm-quantize' "$T/info")"
fi
$Q -q -m int8-sq --no-fold "$T/outl.llm" -o "$T/sqn.llm" 2>"$T/err" || bad "int8-sq --no-fold: $(cat "$T/err")"
"$B/cmd/llm-info" "$T/sqn.llm" >"$T/info"
ksqn=$(kld_of "$T/sqn.llm")
if [ "$(grep -c 'smoother$' "$T/info")" = 20 ] &&
    [ "$(grep -c 'bf16 .*layernorm.weight$' "$T/info")" = 8 ] &&
    grep -q -- '--act dynamic --no-fold ' "$T/info" &&
    python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (a * 50 < c and b * 50 < c and a < 1.2 * b))" \
        "${ksq:-1}" "${ksqn:-1}" "${kpt:-0}"; then
    ok "int8-sq --no-fold: 20 smoothers, the parent's norms; KLD folded $ksq, not folded $ksqn"
else
    bad "int8-sq --no-fold: $(grep -c 'smoother$' "$T/info") smoothers, KLD ${ksqn:-?} (folded ${ksq:-?})"
fi
# and AWQ beats plain int4 rounding at the same group size there
$Q -q -m int4-awq --group-size 64 "$T/outl.llm" -o "$T/awq.llm" 2>"$T/err" || bad "int4-awq: $(cat "$T/err")"
$Q -q -m w4a16 --group-size 64 "$T/outl.llm" -o "$T/rtn.llm" 2>"$T/err" || bad "w4a16: $(cat "$T/err")"
kawq=$(kld_of "$T/awq.llm") krtn=$(kld_of "$T/rtn.llm")
if python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (a * 2 < b))" "${kawq:-1}" "${krtn:-0}"; then
    ok "outliers, int4 groups of 64: int4-awq KLD $kawq vs w4a16 $krtn"
else
    bad "outliers: int4-awq ${kawq:-?} not below half of w4a16 ${krtn:-?}"
fi
"$B/cmd/llm-info" "$T/awq.llm" | grep -q 'prequant_scaling_factor' &&
    "$B/cmd/llm-info" "$T/awq.llm" | grep -q '"quant_algo":"W4A16_AWQ".*"pre_quant_scale":true' &&
    ok "int4-awq: W4A16_AWQ with pre-quant scales" || bad "int4-awq: section or pre-quant scales"
# w4a8-awq: AWQ's weights with fp8 activations - near int4-awq there (a little above it),
# far below plain int4 rounding
$Q -q -m w4a8-awq --group-size 64 "$T/outl.llm" -o "$T/w4a8o.llm" 2>"$T/err" || bad "w4a8-awq: $(cat "$T/err")"
kw48=$(kld_of "$T/w4a8o.llm")
if python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (b < a < 1.5 * b and a * 2 < c))" \
    "${kw48:-1}" "${kawq:-1}" "${krtn:-0}"; then
    ok "outliers, groups of 64: w4a8-awq KLD $kw48 (int4-awq $kawq, w4a16 $krtn)"
else
    bad "outliers: w4a8-awq ${kw48:-?} not just above int4-awq ${kawq:-?} and below half of w4a16 ${krtn:-?}"
fi

# --alpha auto (int8-sq) and --clip (int4-awq): on the bundled model they run, say what
# they chose per weight (-v), leave it in the provenance and give a working artifact;
# on the outlier model neither loses to the fixed choice it replaces
if $Q -v -m int8-sq --alpha auto "$M" -o "$T/sqa.llm" 2>"$T/err" &&
    [ "$(grep -c 'SmoothQuant alpha [01]\.[0-9][05], output error [01]\.[0-9]* of alpha 0\.5' "$T/err")" = 20 ] &&
    grep -q -- '--alpha auto chose .* over 20 weights' "$T/err"; then
    ok "int8-sq --alpha auto: an alpha for each of the 20 weights"
else
    bad "int8-sq --alpha auto: $(grep -v 'quantized transformer' "$T/err" | head -c 400)"
fi
"$B/cmd/llm-info" "$T/sqa.llm" >"$T/info" 2>&1
grep -q 'llm-quantize .*-m int8-sq --alpha auto --act dynamic --fold' "$T/info" && grep -q smoother "$T/info" &&
    ok "int8-sq --alpha auto: provenance and smoothers" || bad "int8-sq --alpha auto: $(grep 'llm-quantize' "$T/info")"
if $Q -v -m int4-awq --group-size 64 --clip "$M" -o "$T/awqc.llm" 2>"$T/err" &&
    [ "$(grep -c 'AWQ exponent [01]\.[0-9]*, \(clipped\|not clipped (no gain)\), output error' "$T/err")" = 20 ] &&
    "$B/cmd/llm-info" "$T/awqc.llm" >"$T/info" &&
    grep -q 'llm-quantize .*-m int4-awq --group-size 64 --clip ' "$T/info" &&
    grep -q '"quant_algo":"W4A16_AWQ".*"pre_quant_scale":true' "$T/info" &&
    "$B/cmd/llm-run" -q --device cpu "$T/awqc.llm" "$S/lib/data/prompts.jsonl" >"$T/out" &&
    [ "$(grep -c '"text"' "$T/out")" = 8 ]; then
    ok "int4-awq --clip: W4A16_AWQ, provenance, llm-run answers 8 prompts"
else
    bad "int4-awq --clip: $(grep -v 'quantized transformer' "$T/err" | head -c 400)"
fi
# w4a8-awq on the bundled model with its calibration named: the AWQ search (--clip too) for
# each of the 20 weights, W4A8_AWQ, a static activation scale f32 [1] per weight,
# provenance, and llm-run answers on the CPU
if $Q -v -m w4a8-awq --group-size 64 --clip --calib "$S/lib/data/calib.txt" "$M" -o "$T/w4a8.llm" 2>"$T/err" &&
    [ "$(grep -c 'AWQ exponent [01]\.[0-9]*, \(clipped\|not clipped (no gain)\), output error' "$T/err")" = 20 ] &&
    "$B/cmd/llm-info" "$T/w4a8.llm" >"$T/info" &&
    grep -q '"quant_algo":"W4A8_AWQ","kv_cache_quant_algo":null,"group_size":64,.*"pre_quant_scale":true' "$T/info" &&
    [ "$(grep -c 'f32 *\[1\] .*\.activation_scaling_factor$' "$T/info")" = 20 ] &&
    [ "$(grep -c 'prequant_scaling_factor$' "$T/info")" = 20 ] &&
    grep -q 'llm-quantize .*-m w4a8-awq --group-size 64 --clip --calib .*calib.txt ' "$T/info" &&
    grep -Eq 'runs on: cpu(, cuda)?$' "$T/info" &&
    "$B/cmd/llm-run" -q --device cpu "$T/w4a8.llm" "$S/lib/data/prompts.jsonl" >"$T/out" &&
    [ "$(grep -c '"text"' "$T/out")" = 8 ]; then
    k=$(kld_of "$T/w4a8.llm")
    python3 -c "import sys; sys.exit(not (0 < float(sys.argv[1]) < 0.05))" "${k:-1}" &&
        ok "w4a8-awq --clip: W4A8_AWQ, 20 activation scales, provenance, llm-run answers 8 prompts, KLD $k" ||
        bad "w4a8-awq --clip: mean KLD ${k:-?}"
else
    bad "w4a8-awq --clip: $(grep -v 'quantized transformer' "$T/err" | tail -c 400) $(grep 'runs on' "$T/info")"
fi
$Q -q -m int8-sq --alpha auto "$T/outl.llm" -o "$T/sqauto.llm" 2>"$T/err" || bad "int8-sq --alpha auto: $(cat "$T/err")"
$Q -q -m int4-awq --group-size 64 --clip "$T/outl.llm" -o "$T/awqclip.llm" 2>"$T/err" || bad "int4-awq --clip: $(cat "$T/err")"
ksqa=$(kld_of "$T/sqauto.llm") kawqc=$(kld_of "$T/awqclip.llm")
if python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(not (a < 1.5 * b and a * 50 < c))" \
    "${ksqa:-1}" "${ksq:-0}" "${kpt:-0}"; then
    ok "outliers: int8-sq --alpha auto KLD $ksqa (alpha 0.5: $ksq)"
else
    bad "outliers: int8-sq --alpha auto ${ksqa:-?} vs alpha 0.5 ${ksq:-?}, plain ${kpt:-?}"
fi
if python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (a < b))" "${kawqc:-1}" "${kawq:-0}"; then
    ok "outliers, groups of 64: int4-awq --clip KLD $kawqc < without $kawq"
else
    bad "outliers: int4-awq --clip ${kawqc:-?} not below ${kawq:-?} without"
fi

# the KV cache: alone and with a weight mode; a scale for K and one for V in every layer
for kv in fp8 int8; do
    if $Q -q --kv $kv "$M" -o "$T/kv$kv.llm" 2>"$T/err" &&
        "$B/cmd/llm-info" "$T/kv$kv.llm" >"$T/info" &&
        grep -q "\"kv_cache_quant_algo\":\"${kv^^}\"" "$T/info" &&
        [ "$(grep -c 'f32 *\[2\] .*attention.kv_cache_scaling_factor' "$T/info")" = 4 ] &&
        "$B/cmd/llm-run" -q --device cpu "$T/kv$kv.llm" "$S/lib/data/prompts.jsonl" >"$T/out" &&
        [ "$(grep -c '"text"' "$T/out")" = 8 ]; then
        k=$(kld_of "$T/kv$kv.llm")
        python3 -c "import sys; sys.exit(not (0 < float(sys.argv[1]) < 0.01))" "${k:-1}" &&
            ok "--kv $kv: 4 layers of K and V scales, runs, mean KLD $k" ||
            bad "--kv $kv: mean KLD ${k:-?}"
    else
        bad "--kv $kv: $(head -c 300 "$T/err")"
    fi
done
$Q -q -m w8a16 --kv int8 "$M" -o "$T/w8kv.llm" 2>"$T/err" &&
    "$B/cmd/llm-info" "$T/w8kv.llm" | grep -q '"quant_algo":"W8A16","kv_cache_quant_algo":"INT8"' &&
    ok "w8a16 with --kv int8" || bad "w8a16 --kv int8: $(head -c 300 "$T/err")"

# expect STATUS SUBSTRING ARGS...: one stderr line holding SUBSTRING (a usage error adds
# the line pointing at --help), that exit status, no output
expect() {
    local want=$1 sub=$2
    shift 2
    rm -f "$T/o.llm"
    $Q -q "$@" >"$T/stdout" 2>"$T/err"
    local rc=$? lines
    lines=$(grep -c '' "$T/err")
    [ "$rc" = 2 ] && lines=$((lines - 1))
    if [ "$rc" = "$want" ] && [ "$lines" = 1 ] && grep -qF -- "$sub" "$T/err" && [ ! -e "$T/o.llm" ] &&
        [ -z "$(ls "$T" | grep '^\.o\.llm\|^o\.llm')" ]; then
        ok "exit $rc: $(cat "$T/err")"
    else
        bad "$*: exit $rc (want $want), $lines lines: $(head -c 300 "$T/err")"
    fi
}
expect 3 "is above --max-kld" -m w4a16 --group-size 64 --max-kld 0.000001 "$M" -o "$T/o.llm"
expect 1 "already quantized" -m w8a16 "$T/w8a16.llm" -o "$T/o.llm"
expect 1 "already quantized (INT8)" -m w8a16 "$T/kvint8.llm" -o "$T/o.llm"
expect 2 "--kv: 'int4' is not fp8 or int8" --kv int4 "$M" -o "$T/o.llm"
expect 1 "does not divide the 704 input channels" -m w4a16 "$M" -o "$T/o.llm"
: >"$T/empty.txt"
expect 1 "empty evaluation text" -m w8a16 --eval "$T/empty.txt" "$M" -o "$T/o.llm"
expect 1 "nosuch.txt" -m w8a16 --eval "$T/nosuch.txt" "$M" -o "$T/o.llm"
expect 1 "does not divide the 704 input channels" -m int4-awq "$M" -o "$T/o.llm"
expect 1 "does not divide the 704 input channels" -m w4a8-awq "$M" -o "$T/o.llm"
expect 2 "are for -m int8-sq" -m w8a16 --alpha 0.3 "$M" -o "$T/o.llm"
expect 2 "--alpha: bad value" -m int8-sq --alpha 1.5 "$M" -o "$T/o.llm"
expect 2 "--alpha: bad value '2' (0 to 1, auto or none)" -m int8-sq --alpha 2 "$M" -o "$T/o.llm"
expect 2 "--alpha: bad value 'Auto'" -m int8-sq --alpha Auto "$M" -o "$T/o.llm"
expect 2 "are for -m int8-sq" -m int4-awq --alpha auto --group-size 64 "$M" -o "$T/o.llm"
expect 2 "are for -m int8-sq" -m w4a8-awq --act static --group-size 64 "$M" -o "$T/o.llm"
expect 2 "--clip is for -m int4-awq and w4a8-awq" -m w4a16 --clip --group-size 64 "$M" -o "$T/o.llm"
expect 2 "--clip is for -m int4-awq and w4a8-awq" -m int8-sq --clip "$M" -o "$T/o.llm"
expect 2 "--fold and --no-fold are for -m int8-sq" -m fp8 --no-fold "$M" -o "$T/o.llm"
expect 1 "empty calibration text" -m fp8 --calib "$T/empty.txt" "$M" -o "$T/o.llm"
printf '{"prompt": "def f(x):"}\nnot json\n' >"$T/bad.jsonl"
expect 1 "bad.jsonl': line 2" -m fp8 --calib "$T/bad.jsonl" "$M" -o "$T/o.llm"
expect 2 "takes no calibration" -m w8a16 --calib "$T/bad.jsonl" "$M" -o "$T/o.llm"
# calibration from llm-run JSONL prompts
if $Q -q -m fp8 --calib "$S/lib/data/prompts.jsonl" --no-eval "$M" -o "$T/fp8j.llm" 2>"$T/err" &&
    "$B/cmd/llm-info" "$T/fp8j.llm" | grep -q "activation_scaling_factor"; then
    ok "fp8 calibrated on llm-run JSONL prompts"
else
    bad "fp8 with JSONL calibration: $(head -c 300 "$T/err")"
fi
expect 2 "unknown mode 'int3' (w8a16, w4a16, fp8-pc, fp8, int8-sq, int4-awq, w4a8-awq)" -m int3 "$M" -o "$T/o.llm"
expect 1 "every one is excluded" -m w8a16 --exclude layers "$M" -o "$T/o.llm"
"$B/cmd/llm-convert" -q --random "$S/tests/fixtures/mixtral/config.json" -o "$T/moe.llm"
# a mixture of experts: expert stacks quantized [experts][out][in], run on both backends
if $Q -q -m w8a16 --no-eval "$T/moe.llm" -o "$T/moe-q.llm" 2>"$T/err" &&
    "$B/cmd/llm-info" --tensors "$T/moe-q.llm" >"$T/info" 2>&1 &&
    grep -Eq 'i8 +\[4, 96, 64\].*layers\.0\.mlp\.fc\.weight' "$T/info" &&
    grep -Eq 'f32 +\[4, 96\].*layers\.0\.mlp\.fc\.per_channel_scale' "$T/info" &&
    grep -q 'runs on: cpu, cuda$' "$T/info"; then
    ok "MoE: expert stacks quantized, runs on the cpu and cuda"
else
    bad "MoE w8a16: $(head -c 300 "$T/err") $(grep -E 'mlp.fc|runs on' "$T/info" | head -3)"
fi
head -c 100000 "$M" >"$T/trunc.llm"
expect 1 "trunc.llm" -m w8a16 "$T/trunc.llm" -o "$T/o.llm"
# through a pipe, both ways
if $Q -q -m w8a16 --no-eval - <"$M" | "$B/cmd/llm-info" - >"$T/info" 2>"$T/err" &&
    grep -q '"quant_algo":"W8A16"' "$T/info" && grep -q "quantization report" "$T/info"; then
    bad "pipe: a report without evaluation"
elif grep -q '"quant_algo":"W8A16"' "$T/info"; then
    ok "pipe: stdin to stdout, W8A16 and no report"
else
    bad "pipe: $(head -c 300 "$T/err")"
fi
echo "$n checks, $fails failed"
[ "$fails" = 0 ]
