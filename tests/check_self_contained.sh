#!/usr/bin/env bash
# The project must be readable on its own: no source, script or doc may cite the developers'
# specification, which does not ship. Protocol facts are cited as docs/protocol.md and a section
# ("Schedules", "The U-Net", "The denoiser", "The GMM protocol", "Lipschitz facts", "The
# variational bound"). Lists every file:line that names it and fails, or passes silently.
#
# Usage: tests/check_self_contained.sh [SOURCE_DIR]   (default: the repository holding this script)
# Files: tracked and untracked-but-not-ignored files from git when SOURCE_DIR is a git work tree,
# else every file under it except build*/, runs/, data/ and .git/.
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
cd "$root"
# Spelled in two parts so that this script does not match itself.
word="SP""EC"

list_files() {
  if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- \
      '*.cpp' '*.hpp' '*.md' '*.py' '*.sh' '*.json' '*.txt'
  else
    find . \( -name '.git' -o -path './build*' -o -path './runs' -o -path './data' \) -prune \
      -o -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.md' -o -name '*.py' \
      -o -name '*.sh' -o -name '*.json' -o -name '*.txt' \) -print0
  fi
}

hits=$(list_files | xargs -0 -r grep -n -I -s -- "$word" || true)
if [[ -n "$hits" ]]; then
  echo "$hits"
  echo
  echo "check_self_contained: $(wc -l <<< "$hits") line(s) above cite '$word', which does not ship" \
       "with the project; cite docs/protocol.md and its section instead." >&2
  exit 1
fi
