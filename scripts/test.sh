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
(cd "$build" && ctest --output-on-failure --no-tests=error -j"$(nproc)") || status=1
python3 -m pytest -q tools/tests || status=1

# The build above has no -march flag, as a consumer's: the kernels are chosen at run time,
# and ctest ran the suite at every kernel level this CPU has (ALTCLIP_MAX_ISA). The C++ tests
# and programs again built with -march=native (build-native), where any warning is an error
# (as in the build above): the headers must compile warning-free and give the same results.
cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DALTCLIP_NATIVE=ON -DALTCLIP_INSTALL=OFF \
  -DALTCLIP_WERROR=ON >/dev/null
cmake --build build-native --target altclip_tests zero_shot embed classify -j"$(nproc)"
(cd build-native/tests && ./altclip_tests) || status=1

# Reliability (docs/reliability.md): the C++ tests under AddressSanitizer+UBSan (build-asan),
# the thread tests under ThreadSanitizer (build-tsan), and each fuzz target for
# ALTCLIP_FUZZ_SECONDS (default 30) s (build-fuzz). ALTCLIP_SKIP_RELIABILITY=1 skips them.
if [ "${ALTCLIP_SKIP_RELIABILITY:-0}" != 1 ]; then
  t0=$SECONDS
  bash scripts/setup.sh --fuzz
  bash scripts/sanitize.sh address || status=1
  bash scripts/sanitize.sh thread || status=1
  bash scripts/fuzz.sh "${ALTCLIP_FUZZ_SECONDS:-30}" || status=1
  echo "test.sh: sanitizers and fuzzing took $((SECONDS - t0)) s" >&2
fi
exit $status
