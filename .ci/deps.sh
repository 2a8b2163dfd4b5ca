#!/bin/sh
# Installs what building and testing llm needs on Debian/Ubuntu.
# The CUDA toolkit (nvcc, cuBLASLt) is optional: without it the CPU build is made.
set -e
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    gcc pkg-config meson ninja-build \
    libzstd-dev libxxhash-dev libjansson-dev libpcre2-dev libutf8proc-dev \
    libopenmpi-dev openmpi-bin \
    scdoc valgrind >/dev/null
