#!/usr/bin/env bash
# Installs the Debian packages dpmlab needs, when they are missing. Idempotent.
# Runs apt-get as root, or through sudo; says clearly when neither is possible.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev liblapacke-dev libtbb-dev
  libstb-dev zlib1g-dev
  catch2 libbenchmark-dev
  libcli11-dev nlohmann-json3-dev
  gnuplot-nox
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
)
# Extra packages can be requested by callers (e.g. the sanitizer pass needs clang).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: need root or password-less sudo to install them; run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
