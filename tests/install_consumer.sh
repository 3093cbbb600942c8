#!/usr/bin/env bash
# Installs a built dpmlab tree into a temporary prefix (cmake --install), then configures, builds
# and runs tests/consumer/ against it through find_package(dpmlab): the installed headers,
# libraries, package config and CLI must be enough for a project outside the tree.
# Usage: tests/install_consumer.sh BUILD_DIR [CXX_COMPILER [GENERATOR [COMPILER_LAUNCHER [SANITIZE]]]]
# SANITIZE (e.g. address,undefined): the sanitizers the tree was built with, which the consumer
# must link too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$1
compiler=${2:-c++}
generator=${3:-}
launcher=${4:-}
sanitize=${5:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/dpmlab_install.XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >"$work/install.log"
for file in include/dpmlab/autograd/tensor.hpp include/dpmlab/nn/linear.hpp \
            lib/libdpmlab_trainers.a lib/cmake/dpmlab/dpmlabConfig.cmake \
            lib/cmake/dpmlab/dpmlabConfigVersion.cmake bin/dpmlab; do
  [ -e "$work/prefix/$file" ] || { echo "install_consumer: $file not installed"; exit 1; }
done
"$work/prefix/bin/dpmlab" --help >/dev/null

configure=(-S "$root/tests/consumer" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release
           -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_PREFIX_PATH="$work/prefix")
[ -n "$generator" ] && configure+=(-G "$generator")
[ -n "$launcher" ] && configure+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
[ -n "$sanitize" ] && configure+=(-DCMAKE_CXX_FLAGS="-fsanitize=$sanitize"
                                 -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=$sanitize")
cmake "${configure[@]}" >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" >"$work/build.log" || { cat "$work/build.log"; exit 1; }
output=$("$work/consumer/consumer")
echo "$output"
[ "$output" = "consumer: y = [-1.5, -3]" ] || { echo "install_consumer: unexpected output"; exit 1; }
echo "install_consumer: PASS"
