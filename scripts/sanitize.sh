#!/usr/bin/env bash
# Builds the C++ tests with sanitizers and runs them (docs/reliability.md).
#   scripts/sanitize.sh address   AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer):
#                                 the whole Catch2 suite, examples included (build-asan)
#   scripts/sanitize.sh thread    ThreadSanitizer: tests/test_threads.cpp and test_thread_pool.cpp
#                                 alone, in a binary of their own (build-tsan); ALTCLIP_TSAN_ALL=1:
#                                 the whole suite
# Any finding fails the run (-fno-sanitize-recover=all, halt_on_error). Extra arguments go to
# the Catch2 binary (a test name or tag) instead of running everything it holds.
# Built at -O1 -g1: GCC 12 takes ~5x longer to compile Eigen code with UBSan at -O2.
# ALTCLIP_SANITIZE_JOBS: build parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-address}
shift || true
jobs=${ALTCLIP_SANITIZE_JOBS:-2}
# -Werror is the plain and native builds' job (scripts/test.sh); instrumented builds at -O1 raise
# their own compiler false positives.
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

case "$mode" in
  address)
    build=build-asan
    cmake -S . -B "$build" "${flags[@]}" -DALTCLIP_SANITIZE=address,undefined -DALTCLIP_INSTALL=OFF -DALTCLIP_WERROR=OFF >/dev/null
    cmake --build "$build" -j"$jobs" --target altclip_tests
    bin="$root/$build/tests/altclip_tests"
    # LeakSanitizer needs ptrace-like access; ASAN_OPTIONS=detect_leaks=0 where a container forbids it.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"
    ;;
  thread)
    build=build-tsan
    if [ "${ALTCLIP_TSAN_ALL:-0}" = 1 ]; then
      cmake -S . -B "$build/all" "${flags[@]}" -DALTCLIP_SANITIZE=thread -DALTCLIP_INSTALL=OFF -DALTCLIP_WERROR=OFF >/dev/null
      cmake --build "$build/all" -j"$jobs" --target altclip_tests
      bin="$root/$build/all/tests/altclip_tests"
    else
      # A project of three sources (Catch2's main, the thread and pool tests) on the library target
      # and the project's program flags: a full sanitized suite would take 5x the build time.
      mkdir -p "$build/project"
      cat >"$build/project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16...3.31)
project(altclip_tsan LANGUAGES CXX)
set(ALTCLIP_SANITIZE thread CACHE STRING "" FORCE)
add_subdirectory("$root" altclip EXCLUDE_FROM_ALL)
find_package(Catch2 2 REQUIRED)
add_executable(altclip_thread_tests "$root/tests/main.cpp" "$root/tests/test_threads.cpp" "$root/tests/test_thread_pool.cpp")
target_link_libraries(altclip_thread_tests PRIVATE altclip::altclip altclip_program_flags Catch2::Catch2)
target_compile_definitions(altclip_thread_tests PRIVATE ALTCLIP_TEST_DATA="$root/tests/data"
  ALTCLIP_SOURCE_DIR="$root" ALTCLIP_BINARY_DIR="$root/$build")
CMAKE
      cmake -S "$build/project" -B "$build/out" "${flags[@]}" >/dev/null
      cmake --build "$build/out" -j"$jobs" --target altclip_thread_tests
      bin="$root/$build/out/altclip_thread_tests"
    fi
    # tests/tsan.supp: uninstrumented third-party code only (each entry says why).
    export TSAN_OPTIONS="${TSAN_OPTIONS:-}:halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
    ;;
  *) echo "usage: scripts/sanitize.sh [address|thread] [catch2 args...]" >&2; exit 2 ;;
esac

# The tests read their data relative to tests/ (ctest's WORKING_DIRECTORY).
cd tests
start=$SECONDS
if [ $# -gt 0 ]; then "$bin" "$@"; else "$bin"; fi
echo "sanitize.sh: $mode: tests passed in $((SECONDS - start)) s" >&2
