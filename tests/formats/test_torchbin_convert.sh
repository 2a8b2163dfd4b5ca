#!/bin/bash
# test_torchbin_convert.sh - llm-convert end to end on a PyTorch checkpoint:
# the same tiny LlamaForCausalLM saved as pytorch_model.bin (torchbin/e2e/bin)
# and as model.safetensors (torchbin/e2e/st), with the same config and
# tokenizer files, must convert to artifacts with the same tensors (names,
# dtypes, shapes, sizes, XXH3 of the data); their order may differ, as the
# converter follows each checkpoint's file order (state dict order in the
# .bin, sorted names in the safetensors).  The metadata differs
# only where it must: the provenance names the input folder and lists the
# input files with their hashes (pytorch_model.bin vs model.safetensors);
# everything else in it is compared too.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
E=$S/tests/formats/torchbin/e2e
T=$(mktemp -d "${TMPDIR:-/tmp}/test-torchbin-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
for v in bin st; do
    if ! "$B/cmd/llm-convert" -q -o "$T/$v.llm" "$E/$v" 2>"$T/$v.err"; then
        echo "FAIL: llm-convert $E/$v: $(head -3 "$T/$v.err")" >&2
        exit 1
    fi
    "$B/cmd/llm-info" --json --verify "$T/$v.llm" >"$T/$v.json" || { echo "FAIL: llm-info $v" >&2; exit 1; }
done
python3 - "$T/bin.json" "$T/st.json" "$E" <<'PY' || fails=$((fails + 1))
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
e = sys.argv[3]
bad = 0
def fail(msg):
    global bad
    print("FAIL:", msg, file=sys.stderr)
    bad += 1
keys = ("name", "dtype", "shape", "bytes", "xxh3")
ta = sorted(({k: t[k] for k in keys} for t in a["tensors"]), key=lambda t: t["name"])
tb = sorted(({k: t[k] for k in keys} for t in b["tensors"]), key=lambda t: t["name"])
if not ta:
    fail("no tensors")
if ta != tb:
    fail("tensors differ:\n  %s\n  %s" % (ta, tb))
else:
    print("ok: %d tensors identical" % len(ta))
# provenance: the inputs (and argv's folder) differ, as they must
pa, pb = a["metadata"].pop("provenance"), b["metadata"].pop("provenance")
if a["metadata"] != b["metadata"]:
    fail("metadata outside the provenance differs")
else:
    print("ok: metadata outside the provenance identical")
ins = [i["path"] for p in pa for i in p.get("inputs", [])]
if not any(x.endswith("/bin/pytorch_model.bin") for x in ins):
    fail("provenance inputs do not list pytorch_model.bin: %s" % ins)
else:
    print("ok: provenance lists pytorch_model.bin")
sys.exit(1 if bad else 0)
PY
# the provenance lives in the metadata and the trailer; llm-info shows the
# trailer's copy merged, so the check above covers the one a user sees
[ "$fails" = 0 ] && echo "test_torchbin_convert: all checks passed"
exit "$fails"
