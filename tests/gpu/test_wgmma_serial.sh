#!/bin/sh
# The warpgroup-MMA kernels keep their products in flight: ptxas must not serialize them.
# ptxas says so only as information (C7510..C7519, "wgmma.mma_async instructions are
# serialized ..."), the build goes on, and the kernel runs correct but with each product
# waited for - the int4 GEMM's warpgroup form ran that way unnoticed (docs/CUDA.md).  This
# compiles each kernel file that issues wgmma for sm_90a and fails on any such line.
# usage: test_wgmma_serial.sh NVCC SRCROOT [nvcc arguments]
nvcc=$1
src=$2
shift 2
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
fail=0
seen=0
for f in "$src"/kernels/*.cu; do
    [ -e "$f" ] && grep -q 'wgmma\.mma_async' "$f" || continue
    seen=$((seen + 1))
    name=$(basename "$f")
    if ! "$nvcc" "$@" --std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a \
        --expt-relaxed-constexpr -I"$src" -I"$src/lib/include" -I"$src/lib" -I"$src/kernels" \
        -c "$f" -o "$out/k.o" > "$out/log" 2>&1; then
        echo "FAIL $name: does not compile"
        head -5 "$out/log"
        fail=1
        continue
    fi
    n=$(grep -c 'C751[0-9]' "$out/log")
    if [ "$n" -gt 0 ]; then
        echo "FAIL $name: ptxas serializes wgmma in $n kernels:"
        grep 'C751[0-9]' "$out/log" | sed 's/.*(C751/  (C751/' | head -8
        fail=1
    else
        echo "ok $name: no wgmma serialized"
    fi
done
if [ "$seen" -eq 0 ]; then # nothing checked is no pass: the kernels moved or were renamed
    echo "FAIL: no kernel file under $src/kernels issues wgmma.mma_async"
    exit 1
fi
exit $fail
