# Sourced by the tools that run dpmlab beside PyTorch (compare_torch.sh, compare_pytorch.sh).
# Sets `python` (Debian's python3-torch lives in the system interpreter, not in a pyenv/venv one
# first on PATH) and offers:
#   skip_without_torch CODE   prints a message and exits with CODE when torch cannot be imported;
#   find_dpmlab [PATH]        sets `dpmlab` to PATH, or builds the dpmlab target in build/ (or
#                             $DPM_BUILD_DIR) and uses that.
python=/usr/bin/python3

skip_without_torch() {
  if ! "$python" -c "import torch" >/dev/null 2>&1; then
    echo "skipped: python3-torch not installed ($python cannot import torch)"
    exit "$1"
  fi
}

find_dpmlab() {
  if [ $# -ge 1 ]; then
    dpmlab=$1
    return
  fi
  local root build_dir generator=()
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  build_dir=${DPM_BUILD_DIR:-$root/build}
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
    cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build_dir" --target dpmlab
  dpmlab=$build_dir/apps/dpmlab
}
