#!/bin/bash
# test_convert_info.sh - llm-convert and llm-info from the outside: help and
# usage errors, exit codes, one-line messages, file vs pipe byte identity,
# verification catching a corrupted tensor, no partial outputs, --random.
# Each check prints what it compared; the first failure is reported and
# counted, and the script exits 1 if any failed.
set -u
B=${LLM_BUILDDIR:?LLM_BUILDDIR not set}
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
CONV=$B/cmd/llm-convert
INFO=$B/cmd/llm-info
MK=$B/tests/golden/mkckpt
T=$(mktemp -d "${TMPDIR:-/tmp}/test-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
check() { # description, then a command whose success means the check passed
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# expect CODE PREFIX CMD...: exit status CODE, stderr one line starting with PREFIX
expect() {
    local code=$1 prefix=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local lines
    lines=$(grep -c '' "$T/err")
    if [ "$rc" != "$code" ]; then
        bad "'$*' exited $rc, expected $code; stderr: $(head -3 "$T/err")"
        return 1
    fi
    if [ "$code" != 0 ] && ! head -1 "$T/err" | grep -q "^$prefix"; then
        bad "'$*': stderr does not start with '$prefix': $(head -1 "$T/err")"
        return 1
    fi
    ok "'$*' exits $code${prefix:+ ($(head -1 "$T/err"))}"
    [ "$lines" -ge 0 ]
}

# --- inputs -------------------------------------------------------------------
cat >"$T/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "vocab_size": 320, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "hidden_act": "silu",
 "tie_word_embeddings": false, "torch_dtype": "bfloat16", "bos_token_id": 1,
 "eos_token_id": 2}
EOF
"$MK" --tokenizer --seed 5 "$T/config.json" "$T/ck" 2>/dev/null || { echo "mkckpt failed"; exit 1; }
"$MK" --shards 3 --seed 5 "$T/config.json" "$T/ck3" 2>/dev/null || { echo "mkckpt failed"; exit 1; }

# --- help and usage -------------------------------------------------------------
for tool in llm-convert llm-info; do
    "$B/cmd/$tool" --help >"$T/help" 2>"$T/help.err"
    check "$tool --help exits 0 with usage on stdout" test $? = 0 -a -s "$T/help" -a ! -s "$T/help.err"
    "$B/cmd/$tool" -h | cmp -s - "$T/help"
    check "$tool -h equals --help" test $? = 0
    # the options the help defines are the options the man page defines
    man=$S/man/$tool.1.scd
    grep -E '^ +-' "$T/help" | grep -oE -- '--[a-z][a-z-]*' | sort -u >"$T/opts-help"
    grep -E '^\*-' "$man" | grep -oE -- '--[a-z][a-z-]*' | sort -u >"$T/opts-man"
    check "$tool: --help and $tool.1 define the same options ($(tr '\n' ' ' <"$T/opts-help"))" \
        cmp -s "$T/opts-help" "$T/opts-man"
    "$B/cmd/$tool" --version | grep -q "^$tool [0-9]"
    check "$tool --version" test $? = 0
done
"$CONV" --help >"$T/help"
for o in -o --output --dtype --compress --random --seed -q --quiet -v --verbose -h --help --version; do
    grep -q -- "$o" "$T/help" || bad "llm-convert --help does not list $o"
done
"$INFO" --help >"$T/help"
for o in --json --verify --tensors --no-tensors -h --help --version; do
    grep -q -- "$o" "$T/help" || bad "llm-info --help does not list $o"
done
ok "help lists every option"

expect 2 "llm-convert: " "$CONV"
expect 2 "llm-convert: " "$CONV" --bogus "$T/ck"
expect 2 "llm-convert: " "$CONV" --dtype f8 "$T/ck" -o "$T/x.llm"
expect 2 "llm-convert: " "$CONV" --compress=99 "$T/ck" -o "$T/x.llm"
expect 2 "llm-convert: " "$CONV" "$T/ck" "$T/ck3" -o "$T/x.llm"
expect 2 "llm-convert: " "$CONV" --seed 3 "$T/ck" -o "$T/x.llm"
expect 2 "llm-convert: " "$CONV" --random "$T/config.json" "$T/ck" -o "$T/x.llm"
expect 2 "llm-convert: " "$CONV" "$T/ck" -o
expect 2 "llm-info: " "$INFO"
expect 2 "llm-info: " "$INFO" --bogus x
expect 2 "llm-info: " "$INFO" a b
check "no output after usage errors" test ! -e "$T/x.llm"

# refusing a terminal (script(1) gives the command a pseudo-terminal)
if command -v script >/dev/null 2>&1; then
    script -qec "'$CONV' '$T/ck'; echo \"rc=\$?\"" /dev/null >"$T/tty" 2>&1
    grep -q "refusing to write an artifact to a terminal" "$T/tty" && grep -q "rc=2" "$T/tty"
    check "llm-convert refuses to write to a terminal (exit 2)" test $? = 0
else
    echo "skip: no script(1), terminal refusal not tested"
fi

# --- conversion: file and pipe ----------------------------------------------------
expect 0 "" "$CONV" -q "$T/ck" -o "$T/a.llm"
"$CONV" -q "$T/ck" | cat >"$T/b.llm"
check "file and pipe outputs are byte-identical" cmp "$T/a.llm" "$T/b.llm"
"$CONV" -v "$T/ck" -o "$T/c.llm" 2>"$T/verbose"
check "-v does not change the bytes" cmp "$T/a.llm" "$T/c.llm"
check "-v prints one line per tensor" test "$(grep -c '^llm-convert: \[' "$T/verbose")" = 17
"$CONV" -q "$T/ck" --output="$T/d.llm"
check "--output=FILE" cmp "$T/a.llm" "$T/d.llm"

"$INFO" --verify "$T/a.llm" >"$T/info-file"
check "llm-info --verify FILE exits 0" test $? = 0
"$CONV" -q "$T/ck" | "$INFO" --verify - >"$T/info-pipe"
check "llm-convert | llm-info --verify - exits 0" test $? = 0
tail -n +2 "$T/info-file" >"$T/f1"
tail -n +2 "$T/info-pipe" >"$T/f2"
check "pipe and file reports are identical (after the path line)" cmp "$T/f1" "$T/f2"
sed -n '/^tensors:/,/^total:/p' "$T/info-file" >"$T/table"
check "the table lists 17 tensors" test "$(grep -c 'transformer\|lm_head' "$T/table")" = 17
grep -q "attention.qkv.weight" "$T/table" && grep -q "\[128, 64\]" "$T/table"
check "qkv fused to [(4+2+2)*16, 64] = [128, 64]" test $? = 0
grep -q "verify: ok, 17 tensors" "$T/info-file"
check "verify line" test $? = 0
grep -q "input $T/ck/model.safetensors" "$T/info-file" && grep -q "tokenizer: tokenizer.json" "$T/info-file"
check "provenance inputs and tokenizer files listed" test $? = 0

# sharded checkpoint of the same weights: the same tensor table
"$CONV" -q "$T/ck3" -o "$T/s.llm" && "$INFO" --verify "$T/s.llm" >"$T/info-s"
sed -n '/^tensors:/,/^total:/p' "$T/info-s" >"$T/table-s"
check "sharded checkpoint gives the same tensor table" cmp "$T/table" "$T/table-s"
check "sharded provenance lists 3 shards" test "$(grep -c 'input .*model-0000[1-3]-of-00003' "$T/info-s")" = 3

# compression: same checksums, smaller stored sizes
"$CONV" -q --compress "$T/ck" | "$INFO" --verify - >"$T/info-z"
check "compressed artifact verifies through a pipe" test $? = 0
awk '/^  [a-z0-9]+ +\[/{print $NF, $(NF-1)}' "$T/info-file" | sort >"$T/sums"
awk '/^  [a-z0-9]+ +\[/{print $NF, $(NF-1)}' "$T/info-z" | sort >"$T/sums-z"
check "compression keeps every checksum" cmp "$T/sums" "$T/sums-z"
"$CONV" -q --compress=9 "$T/ck" -o "$T/z1.llm" && "$CONV" -q --compress=9 "$T/ck" | cmp -s - "$T/z1.llm"
check "compressed output is byte-identical through a file and a pipe" test $? = 0

# dtype conversion
"$CONV" -q --dtype f32 "$T/ck" | "$INFO" --verify - >"$T/info-f32"
check "--dtype f32 verifies" test $? = 0
check "--dtype f32: every tensor is f32" test "$(awk '/^  [a-z0-9]+ +\[/{print $1}' "$T/info-f32" | sort -u)" = f32
grep -q "model: llama (LlamaForCausalLM), f32" "$T/info-f32"
check "--dtype f32: the description says f32" test $? = 0

# --json
"$INFO" --json "$T/a.llm" >"$T/json"
check "--json prints one object with the tensors" grep -q '"tensor_count": 17' "$T/json"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["tensors"])==17' "$T/json"
    check "--json output parses" test $? = 0
fi

# --- corruption -------------------------------------------------------------------
# flip a byte inside the data of mlp.proj of layer 1 (12288 bytes of data;
# the record header is under 256 bytes, so offset+1024 is inside the data)
name=transformer.layers.1.mlp.proj.weight
off=$("$INFO" --json "$T/a.llm" | tr -d ' \n' | grep -o "\"name\":\"$name\"[^}]*" |
    sed -n 's/.*"offset":\([0-9]*\).*/\1/p')
check "llm-info --json gives the record offset of $name ($off)" test -n "$off"
cp "$T/a.llm" "$T/bad.llm"
b=$(od -An -tu1 -j $((off + 1024)) -N1 "$T/bad.llm" | tr -d ' ')
printf "$(printf '\\%03o' $(((b + 1) % 256)))" | dd of="$T/bad.llm" bs=1 seek=$((off + 1024)) conv=notrunc 2>/dev/null
expect 1 "llm-info: '$T/bad.llm': tensor '$name' checksum mismatch (stored " "$INFO" --verify "$T/bad.llm"
check "the mismatch is one line" test "$(grep -c '' "$T/err")" = 1
expect 1 "llm-info: '<stdin>': tensor '$name' checksum mismatch" sh -c "cat '$T/bad.llm' | '$INFO' --verify -"
expect 0 "" "$INFO" "$T/bad.llm"
head -c 5000 "$T/a.llm" >"$T/trunc.llm"
expect 1 "llm-info: '$T/trunc.llm': " "$INFO" "$T/trunc.llm"
expect 1 "llm-info: '<stdin>': " sh -c "head -c 5000 '$T/a.llm' | '$INFO' -"
expect 1 "llm-info: 'nonexistent.llm'\|llm-info: unable to open 'nonexistent.llm'" "$INFO" nonexistent.llm
expect 1 "llm-info: '$T/config.json': not an llm artifact" "$INFO" "$T/config.json"

# --- conversion failures leave nothing ----------------------------------------------
mkdir -p "$T/outdir"
expect 1 "llm-convert: " "$CONV" -q "$T/nope" -o "$T/outdir/x.llm"
grep -q "$T/nope" "$T/err"
check "the message names the missing folder" test $? = 0
cp -r "$T/ck" "$T/cut"
sz=$(stat -c %s "$T/cut/model.safetensors")
truncate -s $((sz - 100)) "$T/cut/model.safetensors"
expect 1 "llm-convert: '$T/cut/model.safetensors'" "$CONV" -q "$T/cut" -o "$T/outdir/x.llm"
check "the failure is one line" test "$(grep -c '' "$T/err")" = 1
check "no output (or temporary) left behind" test -z "$(ls -A "$T/outdir")"
# a write error: the destination folder does not exist
expect 1 "llm-convert: " "$CONV" -q "$T/ck" -o "$T/missing/x.llm"

# --- random weights --------------------------------------------------------------
"$CONV" -q --random "$T/config.json" --seed 7 -o "$T/r1.llm"
"$CONV" -q --random "$T/config.json" --seed 7 | cat >"$T/r2.llm"
check "--random is deterministic (file and pipe)" cmp "$T/r1.llm" "$T/r2.llm"
"$CONV" -q --random "$T/config.json" --seed 8 -o "$T/r3.llm"
check "another seed gives other weights" test "$(cmp -s "$T/r1.llm" "$T/r3.llm"; echo $?)" = 1
"$INFO" --verify "$T/r1.llm" >"$T/info-r"
check "--random artifact verifies" test $? = 0
shapes() { sed -n '/^tensors:/,/^total:/p' "$1" | awk '/^  [a-z0-9]+ +\[/{print substr($0, 3, 31), $NF}' | sort; }
shapes "$T/info-r" >"$T/shapes-r"
shapes "$T/info-file" >"$T/shapes"
check "--random has the checkpoint's tensors, shapes and dtypes" cmp "$T/shapes" "$T/shapes-r"
grep -q "tokenizer: (none)" "$T/info-r"
check "--random embeds no tokenizer" test $? = 0

if [ "$fails" != 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"
