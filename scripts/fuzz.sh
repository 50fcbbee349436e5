#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with -fsanitize=fuzzer,address,undefined) in
# build-fuzz and runs each for SECONDS (default 30), one after the other, one process each.
#   scripts/fuzz.sh            30 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 600        the long run of docs/reliability.md
#   scripts/fuzz.sh 60 image   only some targets (model_file, image, tokenizer, json)
# The seeds in fuzz/corpus/<target> are read, never written; what the fuzzer adds goes to
# build-fuzz/corpus/<target> (kept between runs). A crash, leak, timeout (> 25 s for one
# input) or out-of-memory (> 2 GB) is written to build-fuzz/artifacts/ and fails the script;
# reproduce with build-fuzz/fuzz_<target> <file>, then add it to tests/data/regressions/.
# Needs clang (scripts/setup.sh --fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model_file image tokenizer json)
build=build-fuzz
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz.sh: clang++ not found; run scripts/setup.sh --fuzz" >&2
  exit 1
fi
CXX=clang++ cmake -S fuzz -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${ALTCLIP_FUZZ_JOBS:-2}"
mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  log="$build/fuzz_$t.log"
  echo "fuzz.sh: fuzz_$t for ${seconds} s" >&2
  if ! "$build/fuzz_$t" "$build/corpus/$t" "fuzz/corpus/$t" -max_total_time="$seconds" \
      -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1; then
    status=1
    echo "fuzz.sh: fuzz_$t FOUND A PROBLEM; see $log and $build/artifacts/" >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$log" >&2 || tail -30 "$log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*" "$log" | tail -1)
  echo "fuzz.sh: fuzz_$t: ${execs:-?} executions in ${seconds} s ($cov)" >&2
done
exit $status
