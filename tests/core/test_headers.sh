#!/bin/sh
# Every public header compiles on its own, as C and as C++ (extern "C" guards).
set -u
src=${LLM_SRCDIR:?}
cc=${CC:-cc}
cxx=${CXX:-c++}
jflags=$(pkg-config --cflags jansson 2>/dev/null)
fails=0 n=0
for h in "$src"/lib/include/llm/*.h; do
    n=$((n + 1))
    if ! echo 'int llm_header_probe;' | $cc -fsyntax-only -std=gnu11 -Wall -Wextra -Werror \
            -I"$src/lib/include" $jflags -include "$h" -x c - 2>/tmp/hdr.$$; then
        echo "FAIL (C): ${h##*/}"; cat /tmp/hdr.$$; fails=$((fails + 1))
    fi
    if command -v "$cxx" >/dev/null 2>&1 && ! echo 'int llm_header_probe;' | $cxx -fsyntax-only \
            -std=c++17 -I"$src/lib/include" $jflags -include "$h" -x c++ - 2>/tmp/hdr.$$; then
        echo "FAIL (C++): ${h##*/}"; cat /tmp/hdr.$$; fails=$((fails + 1))
    fi
done
rm -f /tmp/hdr.$$
echo "$n headers, $fails failures"
[ "$fails" = 0 ]
