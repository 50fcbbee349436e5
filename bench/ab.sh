#!/usr/bin/env bash
# Times the working tree's model against revision REV's in one process (bench/ab_model.cpp):
#   bash bench/ab.sh REV [MODEL_FILE] [ROUNDS] [THREADS]
# MODEL_FILE defaults to the bench's f32 file (python3 bench/make_bench_model.py makes it).
# Built as a consumer builds (no -march flag), -O2, with the system's Eigen.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:?usage: bench/ab.sh REV [MODEL_FILE] [ROUNDS] [THREADS]}
MODEL=${2:-$ROOT/bench/.cache/altclip-large/altclip-large-f32.altclip}
ROUNDS=${3:-8}
THREADS=${4:-0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git -C "$ROOT" archive "$REV" include | tar -x -C "$WORK"
# With oneDNN where it is installed (as CMake links it), so its paths (AMX) are compared too.
DNNL=()
[ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && DNNL=(-DALTCLIP_WITH_ONEDNN=1 -ldnnl -lgomp)
g++ -O2 -std=c++17 -DNDEBUG -pthread -I"$ROOT/include" -I/usr/include/eigen3 \
    -DALTCLIP_AB_BASE="\"$WORK/include/altclip/model.hpp\"" "$ROOT/bench/ab_model.cpp" -o "$WORK/altclip_ab" "${DNNL[@]}"
echo "base: $(git -C "$ROOT" rev-parse --short "$REV"); new: the working tree"
"$WORK/altclip_ab" "$MODEL" "$ROUNDS" "$THREADS"
