#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: the C++ tests (ctest: Catch2 parity,
# file, image, tokenizer tests and the consumer projects) and the converter's tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
build=${ALTCLIP_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)"
status=0
(cd "$build" && ctest --output-on-failure -j"$(nproc)") || status=1
python3 -m pytest -q tools/tests || status=1
exit $status
