#!/usr/bin/env bash
# Configures and builds dpmlab (Release, -O3 -march=native) into build/ (or $DPM_BUILD_DIR).
# Extra arguments go to cmake's configure step; DPM_BUILD_TARGETS (space-separated) limits what is
# built (default: everything, tests and benchmarks included).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DPM_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake "$build_dir" "$@"
fi
targets=()
for target in ${DPM_BUILD_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build_dir" --parallel "$(nproc)" "${targets[@]}"
