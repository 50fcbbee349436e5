#!/usr/bin/env bash
# From a fresh Debian 12 machine (as root) to a classified image:
#   installs the dependencies (scripts/setup.sh), builds the examples (Release, into build/),
#   gets the model (downloads and converts BAAI/AltCLIP once, into models/), and ranks
#   labels in several languages for a bundled photo (a cat, tests/data/images/chelsea.png).
#
#   scripts/zero_shot_demo.sh [--model PATH] [--image PATH]... [--label TEXT]... [-- ZERO_SHOT_ARGS...]
#
# --model PATH (or ALTCLIP_MODEL=PATH): a converted .altclip file, or a downloaded AltCLIP
# checkpoint folder (converted once into models/). Without it, the hub repo ALTCLIP_REPO
# (default BAAI/AltCLIP) at ALTCLIP_REVISION (default main) is downloaded and converted, once.
# More settings: ALTCLIP_DTYPE (f32, f16, bf16, q8), ALTCLIP_MODEL_DIR (default models/),
# ALTCLIP_BUILD_DIR (default build/), ALTCLIP_SKIP_SETUP=1, ALTCLIP_SKIP_BUILD=1, and
# huggingface_hub's HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_OFFLINE. See docs/main_job.md.
# Arguments after `--` go to examples/zero_shot (e.g. -- --top-k 3 --json). Only zero_shot's
# output goes to stdout (so `-- --json` prints JSON alone); every step's output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2  # fd 3: the real stdout, for the result and --help; fd 1: stderr from here on

# The comment block at the top of this file, up to its first line that is not a comment.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&3; }
model=${ALTCLIP_MODEL:-}
images=()
labels=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) [ $# -ge 2 ] || { echo "zero_shot_demo: --model needs a PATH" >&2; exit 2; }; model=$2; shift 2 ;;
    --model=*) model=${1#--model=}; shift ;;
    --image) [ $# -ge 2 ] || { echo "zero_shot_demo: --image needs a PATH" >&2; exit 2; }; images+=("$2"); shift 2 ;;
    --label) [ $# -ge 2 ] || { echo "zero_shot_demo: --label needs a TEXT" >&2; exit 2; }; labels+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "zero_shot_demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#images[@]} -eq 0 ]; then
  images=(tests/data/images/chelsea.png)
fi
if [ ${#labels[@]} -eq 0 ]; then
  # a cat / a dog (zh) / a bird (fr) / a car (de) / a cat (ru) / a cup of coffee (zh)
  labels=("a cat" "一只狗" "un oiseau" "ein Auto" "кошка" "一杯咖啡")
fi
for img in "${images[@]}"; do
  [ -f "$img" ] || { echo "zero_shot_demo: $img: no such image" >&2; exit 2; }
done
build=${ALTCLIP_BUILD_DIR:-build}
fetch=(python3 tools/fetch_model.py)
[ -n "$model" ] && fetch+=(--model "$model")

step() { printf '\n== %s\n' "$*" >&2; }

# Fail fast (before the long setup and build) when there is no model and no way to get one.
if command -v python3 >/dev/null 2>&1; then
  step "model: checking"
  "${fetch[@]}" --check
fi

if [ "${ALTCLIP_SKIP_SETUP:-0}" != 1 ]; then
  step "setup: scripts/setup.sh (build dependencies, numpy)"
  bash scripts/setup.sh
fi

if [ "${ALTCLIP_SKIP_BUILD:-0}" != 1 ]; then
  step "build: examples into $build/ (Release)"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DALTCLIP_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$build" --target zero_shot -j"$(nproc)"
fi
zero_shot=$build/examples/zero_shot
[ -x "$zero_shot" ] || { echo "zero_shot_demo: $zero_shot was not built" >&2; exit 1; }

step "model: getting it (downloaded and converted only the first time)"
model_file=$("${fetch[@]}")

step "zero-shot: ranking ${#labels[@]} labels for ${images[*]}"
args=(--model "$model_file")
for img in "${images[@]}"; do args+=(--image "$img"); done
for l in "${labels[@]}"; do args+=(--label "$l"); done
"$zero_shot" "${args[@]}" "${extra[@]+"${extra[@]}"}" >&3
