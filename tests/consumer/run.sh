#!/usr/bin/env bash
# Builds tests/consumer against altclip, installed (find_package) or as a subdirectory, and runs it.
# usage: run.sh MODE SOURCE_DIR BINARY_DIR MODEL
set -euo pipefail
mode=$1 src=$2 bin=$3 model=$4
work="$bin/consumer-$mode"
rm -rf "$work"
mkdir -p "$work"
if [ "$mode" = find_package ]; then
  # The README's install commands, on a configure that cannot find Catch2 (installing must not
  # need the test dependencies) and builds nothing of its own.
  cmake -S "$src" -B "$work/altclip-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON \
    -DALTCLIP_BUILD_EXAMPLES=OFF >/dev/null 2>"$work/configure.err" || { cat "$work/configure.err" >&2; exit 1; }
  cmake --install "$work/altclip-build" --prefix "$work/prefix" >/dev/null
  cmake -S "$src/tests/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
else
  cmake -S "$src/tests/consumer" -B "$work/build" -DALTCLIP_CONSUMER_MODE=add_subdirectory -DALTCLIP_SOURCE="$src" >/dev/null
fi
cmake --build "$work/build" -j2 >/dev/null
out=$("$work/build/consumer" "$model")
echo "$out"
[ "$out" = "projection_dim 16" ]
