#!/usr/bin/env bash
# Builds one libFuzzer target and runs it for a while:
#   scripts/fuzz.sh NAME SECONDS [extra libFuzzer flags]
# NAME is one of safetensors checkpoint resume idx gmm config (fuzz/targets.hpp). The seeds in
# fuzz/corpus/NAME are only read; new inputs go to <build>/fuzz-corpus/NAME and a crashing input
# to <build>/fuzz-artifacts/NAME-crash-*: keep it as a regression in fuzz/regressions/NAME/
# (tests/test_fuzz_regressions.cpp replays it). Build dir: $DPM_FUZZ_BUILD_DIR (build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
targets="safetensors checkpoint resume idx gmm config"
if [ $# -lt 2 ] || [[ " $targets " != *" $1 "* ]] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NAME SECONDS [libFuzzer flags]   (NAME: $targets)" >&2
  exit 2
fi
name=$1 seconds=$2
shift 2

./scripts/install-deps.sh clang libclang-rt-14-dev  # clang++ and the libFuzzer runtime
build_dir=${DPM_FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DDPM_FUZZ=ON -DDPM_BUILD_TESTS=OFF -DDPM_BUILD_BENCH=OFF
fi
cmake --build "$build_dir" --parallel "$(nproc)" --target "fuzz_$name"

work_corpus=$build_dir/fuzz-corpus/$name
mkdir -p "$work_corpus" "$build_dir/fuzz-artifacts"
log=$build_dir/fuzz-$name.log
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
# -timeout: an input that takes this long is a finding (a hang), not a slow parser.
"$build_dir/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
  -artifact_prefix="$build_dir/fuzz-artifacts/$name-" "$@" "$work_corpus" "fuzz/corpus/$name" \
  >"$log" 2>&1 || status=$?
tail -n 25 "$log"
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
echo "fuzz.sh: $name: ${seconds}s, ${execs:-?} executions, final ${coverage:-coverage unknown}," \
  "corpus $(find "$work_corpus" -type f | wc -l) files; exit status $status (log: $log)"
exit "$status"
