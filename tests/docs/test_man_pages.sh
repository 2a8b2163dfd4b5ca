#!/bin/sh
# test_man_pages.sh - the man pages match the tools: every page that
# man/meson.build lists exists as man/<page>.scd, every man/*.scd is listed
# (so it is built and installed), every tool of cmd/meson.build has its
# section-1 page, every cmd/llm-*.c is a listed tool, and each page opens
# with its own name and has the sections a reader looks for.
#   test_man_pages.sh --pages PAGE... --tools TOOL...   (the two Meson lists)
set -u
S=${LLM_SRCDIR:?LLM_SRCDIR not set}
pages="" tools="" mode=""
for a in "$@"; do
    case $a in
    --pages | --tools) mode=$a ;;
    *) if [ "$mode" = --pages ]; then pages="$pages $a"; else tools="$tools $a"; fi ;;
    esac
done
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ -n "$pages" ] && [ -n "$tools" ] || fail "no pages or no tools given"
for p in $pages; do
    f=$S/man/$p.scd
    if [ ! -f "$f" ]; then
        fail "man/meson.build lists $p, but man/$p.scd does not exist"
        continue
    fi
    name=${p%.*} sec=${p##*.}
    [ "$(head -1 "$f")" = "$name($sec)" ] || fail "man/$p.scd does not open with '$name($sec)'"
    want="NAME SYNOPSIS DESCRIPTION EXAMPLES"
    [ "$sec" = 1 ] && want="$want OPTIONS EXIT_STATUS"
    for h in $want; do
        grep -q "^# $(echo "$h" | tr _ ' ')\$" "$f" || fail "man/$p.scd has no '$h' section"
    done
done
for f in "$S"/man/*.scd; do
    p=$(basename "$f" .scd)
    case " $pages " in *" $p "*) ;; *) fail "man/$p.scd is not in man/meson.build" ;; esac
done
for t in $tools; do
    case " $pages " in *" $t.1 "*) ;; *) fail "tool $t has no man page $t.1 in man/meson.build" ;; esac
done
for f in "$S"/cmd/llm-*.c; do
    t=$(basename "$f" .c)
    case " $tools " in *" $t "*) ;; *) fail "cmd/$t.c is not a tool in cmd/meson.build" ;; esac
done
echo "$(echo $pages | wc -w) pages, $(echo $tools | wc -w) tools, $fails failures"
[ "$fails" = 0 ]
