#!/bin/bash
# run.sh - the whole GPU round on a machine with a CUDA device.
#
#   tests/gpu/run.sh [stage ...]      stages: env telemetry sass ops fillq memcheck forward comm
#                                     qforward calib families random familybench kernels
#                                     model llmbench
#                                     not in the default set: calibbench (llm-quantize's
#                                     calibration on a random Llama-2-7B: time and memory,
#                                     CALIBBENCH_MODES), decode (batch-1 decode per model
#                                     shape), profile (the same per kernel under ncu), lat8b and
#                                     tp8b (llm-bench on a random Llama-3.1-8B), qbench
#                                     (llm-bench on Llama-2-7B quantized: QBENCH_MODES), qprofile
#                                     (one decode step of it per kernel under ncu), q4gemm
#                                     (the int4 GEMM on the codes against the dequantized path,
#                                     Llama-2-7B and Falcon-180B shapes, Q4GEMM_ROWS),
#                                     targets (the quantized-execution figures against the
#                                     peers' published ones: TARGETS, T_TARGET)
#                                     (default: all, in that order; T_<STAGE>
#                                     overrides a stage's time limit in seconds)
#
# Binaries come from, in order: $LLM_GPU_BIN; .dev/cuda-bin (made on a
# development machine by `tests/gpu/run.sh pack`, which copies the test and
# benchmark executables of build-cuda there, so a device machine that lacks
# the -dev packages needs no build); build-cuda; or a fresh meson build into
# build-cuda-device.  Results: one log and JSON file per stage under $OUT
# (default ./gpu-out), and a short table printed last.  Exit status: 1 if a
# test stage failed, else 0.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
BINS="test_gpu_ops test_gpu_fill_q test_gpu_forward test_gpu_calib test_gpu_comm bench_gpu_kernels bench_gpu_model llm-convert llm-bench llm-run run-golden llm-build llm-quantize"

if [ "${1:-}" = pack ]; then
    dst=$ROOT/.dev/cuda-bin
    mkdir -p "$dst"
    cp "$ROOT/build-cuda/tests/gpu/test_gpu_ops" "$ROOT/build-cuda/tests/gpu/test_gpu_forward" \
       "$ROOT/build-cuda/tests/gpu/test_gpu_fill_q" "$ROOT/build-cuda/tests/gpu/test_gpu_calib" \
       "$ROOT/build-cuda/tests/gpu/test_gpu_comm" \
       "$ROOT/build-cuda/bench/gpu/bench_gpu_kernels" "$ROOT/build-cuda/bench/gpu/bench_gpu_model" \
       "$ROOT/build-cuda/cmd/llm-convert" "$ROOT/build-cuda/cmd/llm-bench" "$ROOT/build-cuda/cmd/llm-run" \
       "$ROOT/build-cuda/tests/engine/run-golden" "$ROOT/build-cuda/cmd/llm-build" \
       "$ROOT/build-cuda/cmd/llm-quantize" "$dst/" || exit 1
    git -C "$ROOT" rev-parse --short=12 HEAD > "$dst/COMMIT"
    git -C "$ROOT" status --short -- kernels lib/backend/cuda tests/gpu bench/gpu >> "$dst/COMMIT"
    for b in $BINS; do
        ldd "$dst/$b" | grep -v -E 'linux-vdso|libc\.so|libm\.so|libstdc|libgcc|libgomp|libcuda|libcublas|libnccl|ld-linux|libdl|libpthread|librt' \
            && { echo "$b: unexpected shared library dependency"; exit 1; }
    done
    du -sh "$dst"
    exit 0
fi

export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=$PATH:/usr/local/cuda/bin

find_bin() {
    for d in "${LLM_GPU_BIN:-}" "$ROOT/.dev/cuda-bin" "$ROOT/build-cuda/tests/gpu" \
             "$ROOT/build-cuda/bench/gpu" "$ROOT/build-cuda/cmd" "$ROOT/build-cuda-device/tests/gpu" \
             "$ROOT/build-cuda-device/bench/gpu" "$ROOT/build-cuda-device/cmd"; do
        [ -n "$d" ] && [ -x "$d/$1" ] && { echo "$d/$1"; return; }
    done
}

if [ -z "$(find_bin test_gpu_ops)" ]; then
    echo "== no carried binaries: building build-cuda-device"
    (cd "$ROOT" && meson setup build-cuda-device -Dprefer_static=true -Ddefault_library=static -Dmpi=disabled \
        && ninja -C build-cuda-device) > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi

STAGES=${*:-env telemetry sass ops fillq memcheck forward comm qforward calib families random familybench kernels model llmbench}
declare -A RESULT
fail=0

run_stage() { # name timeout command...
    local name=$1 to=$2
    shift 2
    echo "== $name"
    local t0=$(date +%s)
    timeout "$to" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    tail -n 25 "$OUT/$name.log"
    case $rc in
        0) RESULT[$name]="ok (${dt}s)" ;;
        77) RESULT[$name]="skipped" ;;
        124) RESULT[$name]="TIMEOUT (${dt}s)"; fail=1 ;;
        *) RESULT[$name]="FAIL rc=$rc (${dt}s)"; fail=1 ;;
    esac
}

# A random Llama-2-7B artifact (f16) in RAM, made once (llmbench, calibbench).
llama2_7b() {
    m=${LLM_BENCH_DIR:-/dev/shm}/llama2-7b-random.llm
    if [ ! -f "$m" ]; then
        run_stage convert ${T_CONVERT:-240} "$(find_bin llm-convert)" --random \
            "$ROOT/bench/configs/llama-2-7b.json" --dtype f16 -o "$m"
    fi
}

for st in $STAGES; do
    case $st in
    env)
        { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
          nvcc --version | tail -2; cat "$ROOT/.dev/cuda-bin/COMMIT" 2>/dev/null; } > "$OUT/env.log" 2>&1
        RESULT[env]="$(head -2 "$OUT/env.log" | tail -1)"
        ;;
    telemetry)
        # llm-bench reads the GPU's clocks, power and energy through NVML during each
        # repetition (the bundled model, a few requests): the figures must be there and sane
        run_stage telemetry ${T_TELEMETRY:-120} bash -c "
            '$(find_bin llm-bench)' throughput --device cuda --num-requests 64 --input-len 64 \
                --output-len 64 -r 2 -w 1 --no-probe -f json -o '$OUT/telemetry.json' \
                '$ROOT/lib/data/default.llm' &&
            python3 - '$OUT/telemetry.json' <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
g = d['env']['gpu']
f = d['results'][0]['figures']
m = lambda k: f[k]['mean']
print('telemetry:', g.get('telemetry'), 'limit', g.get('power_limit_w'), 'W, SM max',
      g.get('sm_clock_max_mhz'), 'MHz; SM p50', m('sm_clock_p50'), 'MHz, power p50',
      m('power_p50'), 'W, energy', m('energy'), 'J,', m('output_tokens_per_j'), 'tok/J,',
      'power-capped', m('power_capped_share'))
ok = (g.get('telemetry') == 'nvml' and 0 < m('sm_clock_p50') <= g['sm_clock_max_mhz'] and
      0 < m('power_p50') < 2 * g['power_limit_w'] and m('energy') > 0 and
      0 <= m('power_capped_share') <= 1 and 0 <= m('heat_capped_share') <= 1)
print('ok' if ok else 'FAIL: telemetry figures missing or out of range')
sys.exit(0 if ok else 1)
PY"
        ;;
    sass)
        # which matrix instructions each kernel uses, and whether loads are 16 bytes wide
        b=$(find_bin test_gpu_ops)
        cuobjdump --dump-sass "$b" > "$OUT/sass.txt" 2>&1
        awk '/Function :/ {f=$3} /HMMA|HGMMA|LDG.E.128|LDGSTS|LDSM/ {
                 for (i=1;i<=NF;i++) if ($i ~ /^(HMMA|HGMMA|LDG\.E\.128|LDGSTS|LDSM)/) { split($i,a,"."); c[f" "a[1]]++ } }
             END { for (k in c) print k, c[k] }' "$OUT/sass.txt" | sort > "$OUT/sass_summary.log"
        cat "$OUT/sass_summary.log" | sed 's/^_Z[0-9]*//' | cut -c1-110
        rm -f "$OUT/sass.txt"
        RESULT[sass]="$(grep -c HMMA "$OUT/sass_summary.log") kernels with HMMA"
        ;;
    ops) run_stage ops ${T_OPS:-300} "$(find_bin test_gpu_ops)" ;;
    fillq) run_stage fillq ${T_FILLQ:-60} "$(find_bin test_gpu_fill_q)" ;;
    families)
        # every family's fixture through llm-convert | llm-run --device cuda, against transformers
        run_stage families ${T_FAMILIES:-300} "$ROOT/tests/gpu/families.sh" "$(dirname "$(find_bin llm-run)")"
        ;;
    random)
        # random:CONFIG models (weights made on the GPU) = their converted artifacts
        run_stage random ${T_RANDOM:-200} "$ROOT/tests/gpu/random_model.sh" "$(dirname "$(find_bin llm-run)")"
        ;;
    familybench)
        # every family in a published shape: offline 128/128 and batch 1 (FAMILIES= a subset)
        run_stage familybench ${T_FAMILYBENCH:-1500} env OUT="$OUT" "$ROOT/bench/families.sh" \
            "$(dirname "$(find_bin llm-bench)")"
        [ -f "$OUT/families/table.md" ] && cat "$OUT/families/table.md"
        ;;
    memcheck)
        run_stage memcheck ${T_MEMCHECK:-300} compute-sanitizer --tool memcheck --error-exitcode 3 \
            "$(find_bin test_gpu_ops)" "${LLM_MEMCHECK_FILTER:-dt=bf16|ATTN_ROWS_SPLIT(dt=f32|SAMPLE}"
        ;;
    forward) run_stage forward ${T_FORWARD:-300} "$(find_bin test_gpu_forward)" ;;
    comm) run_stage comm ${T_COMM:-200} "$(find_bin test_gpu_comm)" ;;
    qforward)
        # the bundled model quantized by llm-quantize (w8a16, w4a16 and int4-awq at groups
        # of 32 and 64; fp8 static and per-token, int8-sq per token (factors folded into the
        # norms, and kept), per tensor and unsmoothed;
        # an fp8 and an int8 KV cache, alone and with fp8 / w4a16 weights),
        # f32 engines of three of them (llm-build keeps the codes and scales),
        # and the imported pre-quantized fixtures (AWQ and GPTQ with zero points, GPTQ act-order
        # (inputs gathered by its permutation) and one group per channel; fp8 in f32
        # compute only: random tiny weights with 8-bit activations leave too few rows decided in
        # 16-bit, measured nmse 5-7.6e-3 with every decided row agreeing), CUDA against CPU
        qd=$(mktemp -d "${TMPDIR:-/tmp}/qmodels-XXXXXX")
        q=$(find_bin llm-quantize) m=$ROOT/lib/data/default.llm c=$ROOT/lib/data/calib.txt
        run_stage qforward ${T_QFORWARD:-300} bash -c "set -e
            '$q' -q --no-eval -m w8a16 '$m' -o '$qd/w8a16.llm'
            '$q' -q --no-eval -m w4a16 --group-size 32 '$m' -o '$qd/w4a16-g32.llm'
            '$q' -q --no-eval -m w4a16 --group-size 64 '$m' -o '$qd/w4a16-g64.llm'
            '$q' -q --no-eval -m int4-awq --group-size 64 --calib '$c' '$m' -o '$qd/awq-g64.llm'
            '$q' -q --no-eval -m int4-awq --group-size 32 --calib '$c' '$m' -o '$qd/awq-g32.llm'
            '$q' -q --no-eval -m int8-sq --calib '$c' '$m' -o '$qd/sq.llm'
            '$q' -q --no-eval -m int8-sq --act static --calib '$c' '$m' -o '$qd/sq-static.llm'
            '$q' -q --no-eval -m int8-sq --no-fold --calib '$c' '$m' -o '$qd/sq-nofold.llm'
            '$q' -q --no-eval -m int8-sq --alpha none '$m' -o '$qd/sq-plain.llm'
            '$q' -q --no-eval -m fp8-pc '$m' -o '$qd/fp8pc.llm'
            '$q' -q --no-eval -m fp8 --calib '$c' '$m' -o '$qd/fp8.llm'
            '$q' -q --no-eval --kv fp8 --calib '$c' '$m' -o '$qd/kv-fp8.llm'
            '$q' -q --no-eval --kv int8 --calib '$c' '$m' -o '$qd/kv-int8.llm'
            '$q' -q --no-eval -m fp8 --kv fp8 --calib '$c' '$m' -o '$qd/fp8-kvfp8.llm'
            '$q' -q --no-eval -m w4a16 --group-size 32 --kv int8 --calib '$c' '$m' -o '$qd/w4a16-kvint8.llm'
            for f in awq gptq gptq-8bit gptq-act-order gptq-channel fp8-static fp8-dynamic; do
                '$(find_bin llm-convert)' -q '$ROOT/tests/fixtures/quant/'\$f -o '$qd/imp-'\$f.llm
            done
            for f in w4a16-kvint8 sq fp8; do  # quantized engines: codes and scales as stored
                '$(find_bin llm-build)' -q --dtype f32 '$qd/'\$f.llm -o '$qd/'\$f.engine
            done
            '$(find_bin test_gpu_forward)' '$qd/w8a16.llm' '$qd/w4a16-g32.llm' '$qd/w4a16-g64.llm' \
                '$qd/awq-g64.llm' '$qd/awq-g32.llm' '$qd/sq.llm' '$qd/sq-static.llm' '$qd/sq-nofold.llm' \
                '$qd/sq-plain.llm' '$qd/fp8pc.llm' '$qd/fp8.llm' '$qd/kv-fp8.llm' '$qd/kv-int8.llm' \
                '$qd/fp8-kvfp8.llm' '$qd/w4a16-kvint8.llm' '$qd/imp-awq.llm' '$qd/imp-gptq.llm' \
                '$qd/imp-gptq-8bit.llm' '$qd/imp-gptq-act-order.llm' '$qd/imp-gptq-channel.llm' --f32 '$qd/imp-fp8-static.llm' --f32 '$qd/imp-fp8-dynamic.llm' \
                --f32 '$qd/w4a16-kvint8.engine' --f32 '$qd/sq.engine' --f32 '$qd/fp8.engine'
            # the 8-bit caches' decode attention in blocks of four warps (these rows are short,
            # so the default takes two)
            LLM_CUDA_ATTN_WARPS=4 '$(find_bin test_gpu_forward)' '$qd/kv-fp8.llm' '$qd/kv-int8.llm' \
                '$qd/fp8-kvfp8.llm' '$qd/w4a16-kvint8.llm'
            # int4 past the GEMV on the tensor cores from the codes (llm_k_q4_gemm) at any row count
            LLM_CUDA_Q4GEMM=1000000 '$(find_bin test_gpu_forward)' '$qd/w4a16-g32.llm' \
                '$qd/w4a16-g64.llm' '$qd/awq-g64.llm' '$qd/awq-g32.llm' '$qd/w4a16-kvint8.llm'
            # imported AWQ / GPTQ (integral zero points) in the tile layout, GEMV and GEMM
            LLM_CUDA_QTILE_ZP=1 '$(find_bin test_gpu_forward)' '$qd/imp-awq.llm' '$qd/imp-gptq.llm'
            LLM_CUDA_QTILE_ZP=1 LLM_CUDA_Q4GEMM=1000000 '$(find_bin test_gpu_forward)' \
                '$qd/imp-awq.llm' '$qd/imp-gptq.llm'
            # W4A8 (int4 weights, static fp8 activations) at groups of 128 (the MLP's down
            # product, 704 inputs, kept dense) and 32: as the backend chooses; every product
            # of group 128 on the fused kernel (one row up, no upper bound: the cuBLASLt
            # path's rows raised past any step); every one on cuBLASLt's fp8
            # product (block scales; a refusal is a failure here), row counts padded to 8
            # and, without the padding scratch, the rows past a multiple of 8 on the int4
            # kernels; then none on an fp8 path
            '$q' -q --no-eval -m w4a8-awq --exclude mlp.proj --calib '$c' '$m' -o '$qd/w4a8-g128.llm'
            '$q' -q --no-eval -m w4a8-awq --group-size 32 --calib '$c' '$m' -o '$qd/w4a8-g32.llm'
            '$(find_bin test_gpu_forward)' '$qd/w4a8-g128.llm' '$qd/w4a8-g32.llm'
            LLM_CUDA_W4A8_WG=0 LLM_CUDA_W4A8_LT=1000000 '$(find_bin test_gpu_forward)' '$qd/w4a8-g128.llm'
            for pad in 1 0; do
                LLM_CUDA_W4A8_WG=off LLM_CUDA_W4A8_LT=0 LLM_CUDA_W4A8_PAD=\$pad '$(find_bin test_gpu_forward)' \
                    '$qd/w4a8-g128.llm' > '$qd/w4a8-lt.log' 2>&1 || { cat '$qd/w4a8-lt.log'; false; }
                cat '$qd/w4a8-lt.log'
                if grep 'W4A8:' '$qd/w4a8-lt.log'; then false; fi
            done
            LLM_CUDA_W4A8_WG=off LLM_CUDA_W4A8_LT=1000000 LLM_CUDA_Q4GEMM=1000000 \
                '$(find_bin test_gpu_forward)' '$qd/w4a8-g128.llm' '$qd/w4a8-g32.llm'
            # quantized experts (the tiny Mixtral and Qwen3-MoE fixtures) in every mode: each
            # expert's products through the device's path for its format (moe_loop); the
            # 8-bit activation modes in f32 (near-ties, as above)
            moe=()
            for f in mixtral qwen3-moe; do
                b='$qd/moe-'\$f
                '$(find_bin llm-convert)' -q '$ROOT/tests/fixtures/'\$f -o \$b.llm
                '$q' -q --no-eval -m w8a16 \$b.llm -o \$b-w8a16.llm
                '$q' -q --no-eval -m w4a16 --group-size 32 \$b.llm -o \$b-w4a16.llm
                '$q' -q --no-eval -m int4-awq --group-size 32 --calib '$c' \$b.llm -o \$b-awq.llm
                '$q' -q --no-eval -m int8-sq --calib '$c' \$b.llm -o \$b-sq.llm
                '$q' -q --no-eval -m fp8 --kv fp8 --calib '$c' \$b.llm -o \$b-fp8.llm
                '$q' -q --no-eval -m fp8-pc \$b.llm -o \$b-fp8pc.llm
                moe+=(\$b-w8a16.llm \$b-w4a16.llm \$b-awq.llm --f32 \$b-sq.llm --f32 \$b-fp8.llm
                      --f32 \$b-fp8pc.llm)
            done
            '$(find_bin test_gpu_forward)' \"\${moe[@]}\"
            LLM_CUDA_Q4GEMM=1000000 '$(find_bin test_gpu_forward)' '$qd/moe-mixtral-w4a16.llm' \
                '$qd/moe-qwen3-moe-awq.llm'
            # weight-only experts dequantized for the grouped kernel at every step size
            LLM_CUDA_MOEQ_DENSE=1 '$(find_bin test_gpu_forward)' '$qd/moe-mixtral-w8a16.llm' \
                '$qd/moe-mixtral-w4a16.llm' '$qd/moe-mixtral-awq.llm' '$qd/moe-qwen3-moe-w8a16.llm' \
                '$qd/moe-qwen3-moe-w4a16.llm' '$qd/moe-qwen3-moe-awq.llm'"
        rm -rf "$qd"
        ;;
    calib)
        # calibration on the GPU = on the CPU: the bundled model's statistics from both
        # backends (test_gpu_calib), then llm-quantize with --device cpu and --device cuda
        # must write the same tensors (test_gpu_calib --compare)
        qd=$(mktemp -d "${TMPDIR:-/tmp}/calib-XXXXXX")
        q=$(find_bin llm-quantize) m=$ROOT/lib/data/default.llm c=$ROOT/lib/data/calib.txt
        tc=$(find_bin test_gpu_calib)
        run_stage calib ${T_CALIB:-300} bash -c "set -e
            '$tc' '$m' '$c'
            pairs=()
            for spec in '-m fp8' '-m int8-sq' '-m int8-sq --act static' '-m int8-sq --alpha auto' \
                '-m int8-sq --no-fold' '-m int4-awq --group-size 64' '-m int4-awq --group-size 32 --clip' \
                '--kv fp8' '--kv int8'; do
                tag=\$(printf %s \"\$spec\" | tr -c 'a-z0-9' _)
                for dev in cpu cuda; do
                    '$q' -q --no-eval --device \$dev \$spec --calib '$c' '$m' -o '$qd/'\$dev-\$tag.llm
                done
                pairs+=('$qd/'cpu-\$tag.llm '$qd/'cuda-\$tag.llm)
            done
            '$tc' --compare \"\${pairs[@]}\""
        rm -rf "$qd"
        ;;
    calibbench)
        # llm-quantize's calibration on the GPU, Llama-2-7B shapes (a random f16 artifact in
        # RAM): -m MODE --device cuda --no-eval --calib random (512 windows of 512 tokens; fewer
        # with CALIBBENCH_SAMPLES), wall time, calibration time, peak host RSS and peak GPU
        # memory per mode into $OUT/calibbench/*.json; each mode killed after
        # CALIBBENCH_TIMEOUT seconds (the CPU's quantization of int4-awq takes far longer)
        llama2_7b
        run_stage calibbench ${T_CALIBBENCH:-590} python3 "$ROOT/tests/gpu/calib_bench.py" \
            "$(find_bin llm-quantize)" "$m" "$OUT/calibbench" ${CALIBBENCH_TIMEOUT:-480} \
            ${CALIBBENCH_MODES:-fp8 int8-sq}
        ;;
    q4gemm) # int4 tile weights past the GEMV: the GEMM on the codes against dequant + cuBLASLt
        run_stage q4gemm ${T_Q4GEMM:-300} env \
            LLM_BENCH_Q4GEMM_ONLY=${Q4GEMM_ROWS:-16,32,64,128,256,512,1024,2048,4096} \
            "$(find_bin bench_gpu_kernels)" "$OUT/q4gemm.json" ;;
    kernels) run_stage kernels ${T_KERNELS:-300} "$(find_bin bench_gpu_kernels)" "$OUT/bench_kernels.json" ;;
    model) run_stage model ${T_MODEL:-400} "$(find_bin bench_gpu_model)" "$OUT/bench_model.json" bf16 \
               ${LLM_BENCH_BATCH:-256 448} ;;
    llmbench)
        # the engine end to end: a random Llama-2-7B artifact (f16) in RAM, llm-bench on it
        llama2_7b
        lb=$(find_bin llm-bench)
        run_stage llmbench ${T_LLMBENCH:-400} bash -c "
            '$lb' throughput --device cuda --num-requests ${LLM_BENCH_REQ:-448} \
                --max-seqs ${LLM_BENCH_SEQS:-448} --input-len 128 --output-len 128 -r 2 -w 1 \
                -f md '$m' &&
            '$lb' latency --device cuda --num-requests 4 --input-len 128 --output-len 128 \
                -r 2 -w 1 -f md '$m' &&
            '$lb' sweep --device cuda -p 2048 -n 128 -r 3 -w 1 \
                -f md '$m'"
        ;;
    decode)
        # batch-1 decode through the seam, per model shape (bench_model, decode only)
        for shape in ${LLM_PROFILE_SHAPES:-llama2-7b llama3-8b}; do
            run_stage "decode-$shape" ${T_MODEL:-300} env LLM_BENCH_SHAPE=$shape \
                LLM_BENCH_ONLY=decode "$(find_bin bench_gpu_model)" "$OUT/decode-$shape.json" bf16
        done
        RESULT[decode]="$(grep -h '^decode' "$OUT"/decode-*.log | sed 's/(ctx 128..256)//' | tr '\n' ' ')"
        ;;
    profile)
        # batch-1 decode per kernel: bench_model's decode steps 64..66 under Nsight Compute
        # (durations only), per model shape; summed per kernel by tests/gpu/ncu_sum.py
        for shape in ${LLM_PROFILE_SHAPES:-llama2-7b llama3-8b}; do
            run_stage "ncu-$shape" ${T_PROFILE:-300} bash -c "LLM_BENCH_SHAPE=$shape \
                LLM_BENCH_ONLY=decode ncu --profile-from-start off --clock-control none \
                --metrics gpu__time_duration.sum --csv --page raw \
                '$(find_bin bench_gpu_model)' /dev/null bf16 > '$OUT/ncu-$shape.csv'"
            python3 "$ROOT/tests/gpu/ncu_sum.py" "$OUT/ncu-$shape.csv" > "$OUT/ncu-$shape.txt" 2>&1
            head -30 "$OUT/ncu-$shape.txt"
        done
        ;;
    qprofile)
        # where a decode step of the offline run goes, per kernel: llm-bench throughput on
        # Llama-2-7B (QPROFILE_MODE, default fp8,kv=fp8) with QPROFILE_SEQS requests in flight,
        # forward step QPROFILE_STEP (default 80: decode at ~190 keys) under Nsight Compute;
        # QPROFILE_CONFIG another bench/configs shape, QPROFILE_IN / QPROFILE_OUT the lengths
        spec="random:$ROOT/bench/configs/${QPROFILE_CONFIG:-llama-2-7b}.json:${QPROFILE_MODE:-fp8,kv=fp8}"
        ns=${QPROFILE_SEQS:-1024}
        run_stage qprofile ${T_QPROFILE:-400} bash -c "LLM_CUDA_PROFILE_STEPS=${QPROFILE_STEP:-80} \
            ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum \
            --csv --page raw '$(find_bin llm-bench)' throughput --device cuda \
            --input-len ${QPROFILE_IN:-128} --output-len ${QPROFILE_OUT:-128} \
            --num-requests $ns --max-seqs $ns -r 1 -w 0 '$spec' > '$OUT/qprofile.csv'"
        python3 "$ROOT/tests/gpu/ncu_sum.py" "$OUT/qprofile.csv" 1 > "$OUT/qprofile${QPROFILE_TAG:-}.txt" 2>&1
        head -30 "$OUT/qprofile${QPROFILE_TAG:-}.txt"
        rm -f "$OUT/qprofile.csv"
        ;;
    qbench)
        # Llama-2-7B in each quantization mode (random:CONFIG:MODE, codes made on the GPU; "bf16":
        # the dense model): offline 128/128 (1024 requests, 512 at once) and batch-1 latency, 3
        # repetitions each, JSON under $OUT/qbench.  QBENCH_CONFIG: another bench/configs shape;
        # QBENCH_TP: the throughput run's options; QBENCH_LAT=0: no latency run
        mkdir -p "$OUT/qbench"
        cfgname=${QBENCH_CONFIG:-llama-2-7b}
        for mode in ${QBENCH_MODES:-bf16 fp8 fp8-pc int8-sq w8a16}; do
            spec="random:$ROOT/bench/configs/$cfgname.json"
            [ "$mode" = bf16 ] || spec="$spec:$mode"
            tag=$cfgname-$(printf %s "$mode" | tr ",=" "--")
            lat="'$(find_bin llm-bench)' latency --device cuda --input-len 128 --output-len 128 \
                    --num-requests 4 -r 3 -w 1 -f json -o '$OUT/qbench/$tag-lat.json' '$spec' &&
                '$(find_bin llm-bench)' show -f md '$OUT/qbench/$tag-lat.json'"
            [ "${QBENCH_LAT:-1}" = 0 ] && lat=true
            run_stage "qbench-$tag" ${T_QBENCH:-500} bash -c "
                '$(find_bin llm-bench)' throughput --device cuda \
                    ${QBENCH_TP:---input-len 128 --output-len 128 --num-requests 1024 --max-seqs 512} \
                    -r 3 -w 1 -f json -o '$OUT/qbench/$tag-tp.json' '$spec' &&
                '$(find_bin llm-bench)' show -f md '$OUT/qbench/$tag-tp.json' && $lat"
        done
        ;;
    lat8b|tp8b)
        # the engine end to end on Llama-3.1-8B shapes (bench/configs): batch-1 latency, or
        # offline 128/128 with LLM_TP8B_ARGS (default 2048 requests, up to 1024 in flight)
        m=${LLM_BENCH_DIR:-/dev/shm}/llama3-8b-random.llm
        [ -f "$m" ] || run_stage convert8b ${T_CONVERT:-300} "$(find_bin llm-convert)" --random \
            "$ROOT/bench/configs/llama-3.1-8b.json" -o "$m"
        if [ $st = lat8b ]; then
            run_stage lat8b ${T_LLMBENCH:-300} bash -c "
                '$(find_bin llm-bench)' latency --device cuda --num-requests 4 --input-len 128 \
                    --output-len 128 -r 1 -w 1 -f md '$m'"
        else
            run_stage tp8b ${T_LLMBENCH:-400} bash -c "
                '$(find_bin llm-bench)' throughput --device cuda --input-len 128 --output-len 128 \
                    ${LLM_TP8B_ARGS:---num-requests 2048 --max-seqs 1024} -r 1 -w 1 -f md '$m'"
        fi
        ;;
    targets)
        # the quantized-execution targets on one GPU, each as its figure was measured
        # (docs/CUDA.md): JSON under $OUT/targets, a table against the peers' published
        # figures in the summary.  TARGETS picks and orders them (default: all, about 30
        # minutes on an H200; falcon180 needs ~100 GB of device memory), T_TARGET caps each.
        mkdir -p "$OUT/targets"
        cfg=$ROOT/bench/configs
        for tg in ${TARGETS:-l2-7b-fp8 l3-8b-fp8 l3-8b-2k b1-int4 b1-bf16 l3-70b-fp8 l3-70b-fp8-2x falcon180 falcon180-int4}; do
            tp="throughput --input-len 128 --output-len 128"
            case $tg in
            l2-7b-fp8) a="$tp --num-requests 1024 --max-seqs 1024 --warmup-requests 1024 -r 3 -w 1 random:$cfg/llama-2-7b.json:fp8,kv=fp8" ;;
            l3-8b-fp8) a="$tp --num-requests 2048 --max-seqs 2048 --warmup-requests 2048 -r 3 -w 1 random:$cfg/llama-3.1-8b.json:fp8,kv=fp8" ;;
            l3-8b-2k) a="throughput --input-len 2048 --output-len 2048 --num-requests 448 --max-seqs 448 --warmup-requests 4 -r 3 -w 1 random:$cfg/llama-3.1-8b.json:fp8,kv=fp8" ;;
            b1-int4) a="latency --input-len 128 --output-len 128 --num-requests 1 -r 3 -w 1 random:$cfg/llama-2-7b.json:int4-awq" ;;
            b1-bf16) a="latency --input-len 128 --output-len 128 --num-requests 1 -r 3 -w 1 random:$cfg/llama-2-7b.json" ;;
            l3-70b-fp8) a="$tp --num-requests 1536 --max-seqs 1536 --warmup-requests 1536 -r 3 -w 1 random:$cfg/llama-3.1-70b.json:fp8,kv=fp8" ;;
            # twice the requests the KV pool holds at once: the steady state between the
            # first prefill and the last requests' drain weighs twice as much
            l3-70b-fp8-2x) a="$tp --num-requests 3072 --max-seqs 1536 --warmup-requests 1536 -r 3 -w 1 random:$cfg/llama-3.1-70b.json:fp8,kv=fp8" ;;
            falcon180) a="$tp --num-requests 256 --max-seqs 256 --warmup-requests 32 -r 3 -w 1 random:$cfg/falcon-180b.json:w4a8-awq" ;;
            falcon180-int4) a="$tp --num-requests 256 --max-seqs 256 --warmup-requests 32 -r 3 -w 1 random:$cfg/falcon-180b.json:int4-awq" ;;
            *) echo "unknown target $tg"; RESULT[target-$tg]="unknown"; fail=1; continue ;;
            esac
            run_stage "target-$tg" ${T_TARGET:-900} "$(find_bin llm-bench)" --device cuda -f json \
                -o "$OUT/targets/$tg.json" $a
        done
        ;;
    *) echo "unknown stage $st"; exit 2 ;;
    esac
done

echo
echo "================ summary ================"
for st in ${!RESULT[@]}; do printf "%-14s %s\n" "$st" "${RESULT[$st]:-}"; done
[ -f "$OUT/telemetry.log" ] && grep -E "^telemetry:|^FAIL" "$OUT/telemetry.log"
[ -f "$OUT/ops.log" ] && grep -E "cases, " "$OUT/ops.log"
[ -f "$OUT/forward.log" ] && grep -E "ok$|FAIL" "$OUT/forward.log" | cut -c1-120
[ -f "$OUT/qforward.log" ] && grep -E "ok|FAIL" "$OUT/qforward.log" | cut -c1-160
[ -f "$OUT/calib.log" ] && grep -E "^(ok|FAIL|info)" "$OUT/calib.log" | cut -c1-200
[ -f "$OUT/calibbench.log" ] && cut -c1-400 "$OUT/calibbench.log"
[ -f "$OUT/families.log" ] && grep -E "^(ok|FAIL|refused|families)" "$OUT/families.log" | cut -c1-150
[ -f "$OUT/bench_kernels.json" ] && python3 - "$OUT/bench_kernels.json" <<'EOF' 2>/dev/null
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"{r['bench']:<14} {r['shape']:<32} {r['us']:9.1f} us {r['GBps']:7.0f} GB/s {100*r['bw_frac']:5.1f}% {r['TFLOPs']:6.1f} TF {100*r['flop_frac']:5.1f}%")
EOF
[ -f "$OUT/model.log" ] && grep -E "^(prefill|decode|offline)" "$OUT/model.log"
for f in "$OUT/tp8b.log" "$OUT/lat8b.log"; do
    [ -f "$f" ] && grep -E \
        "output_tokens_per_s|tpot_mean|device_idle_share|sm_clock_p50|power_capped|tokens_per_j" "$f"
done
[ -f "$OUT/llmbench.log" ] && grep -E "^llm-bench: |^\| (pp|tg)[0-9]" "$OUT/llmbench.log" | head -24
[ -d "$OUT/targets" ] && python3 "$ROOT/tests/gpu/targets.py" "$OUT/targets"
exit $fail
