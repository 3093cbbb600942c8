#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite. Non-zero exit on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
ctest --test-dir "${DPM_BUILD_DIR:-build}" --output-on-failure --parallel "$(nproc)" --timeout 900
