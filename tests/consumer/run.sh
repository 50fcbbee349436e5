#!/usr/bin/env bash
# Builds tests/consumer against altclip, installed (find_package) or as a subdirectory, and runs it.
# usage: run.sh MODE SOURCE_DIR BINARY_DIR MODEL
set -euo pipefail
mode=$1 src=$2 bin=$3 model=$4
work="$bin/consumer-$mode"
rm -rf "$work"
mkdir -p "$work"
if [ "$mode" = find_package ]; then
  cmake --install "$bin" --prefix "$work/prefix" >/dev/null
  cmake -S "$src/tests/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
else
  cmake -S "$src/tests/consumer" -B "$work/build" -DALTCLIP_CONSUMER_MODE=add_subdirectory -DALTCLIP_SOURCE="$src" >/dev/null
fi
cmake --build "$work/build" -j2 >/dev/null
out=$("$work/build/consumer" "$model")
echo "$out"
[ "$out" = "projection_dim 16" ]
