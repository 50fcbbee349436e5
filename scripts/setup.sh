#!/usr/bin/env bash
# Installs what altclip needs on a fresh Debian 12 machine (as root): the C++ build
# dependencies from Debian's packages and the Python packages for the tools and tests.
#   scripts/setup.sh          C++ dependencies + converter (numpy)
#   scripts/setup.sh --dev    also torch (CPU), transformers, pytest: the reference, for tests
#   scripts/setup.sh --fuzz   also clang and its sanitizer/libFuzzer runtimes (scripts/fuzz.sh);
#                             combine: scripts/setup.sh --dev --fuzz
set -euo pipefail
dev=0
fuzz=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --fuzz) fuzz=1 ;;
  esac
done

debs=(build-essential cmake pkg-config libeigen3-dev libstb-dev libsentencepiece-dev)
debs+=(nlohmann-json3-dev catch2)  # examples and tests only (the library reads JSON itself)
debs+=(libdnnl-dev)     # oneDNN: the bf16/q8 products on AMX CPUs (optional to the library; CI tests it)
debs+=(libsqlite3-dev)  # examples/image_search keeps its index in SQLite (the library does not)
[ $dev = 1 ] && debs+=(sqlite3 chromium)  # tests: image_search index read back; its HTML page rendered
[ $fuzz = 1 ] && debs+=(clang libclang-rt-14-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# A newer cmake on the PATH (e.g. from pip) is fine; do not fetch Debian's then.
if command -v cmake >/dev/null 2>&1; then
  tmp=(); for p in "${missing[@]}"; do [ "$p" = cmake ] || tmp+=("$p"); done; missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py() { python3 -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "Running pip as the 'root' user" || true; }
python3 -c "import numpy" 2>/dev/null || py numpy
if [ $dev = 1 ]; then
  # torch 2.13.0 is the CPU build this machine kind keeps on disk; another version pulls CUDA.
  python3 -c "import torch" 2>/dev/null || py torch==2.13.0
  python3 -c "import transformers, safetensors, sentencepiece, PIL, pytest, google.protobuf" 2>/dev/null ||
    py transformers safetensors sentencepiece pillow pytest protobuf
fi
echo "setup: done" >&2
