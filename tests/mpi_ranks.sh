#!/usr/bin/env bash
# Two-rank training runs that lose a rank (tests/CMakeLists.txt runs it when MPI is built in):
#   - SIGINT to one rank stops both after the same step, cleanly, with a resume file;
#   - SIGKILL to one rank makes the launcher end the other with an error within a minute
#     instead of it waiting forever in its next all-reduce, and the last resume file still loads.
# Usage: tests/mpi_ranks.sh DPMLAB MPIEXEC [MPIEXEC FLAGS...]
set -euo pipefail
dpmlab=$1
shift
launch=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/dpmlab_mpi_ranks.XXXXXX")
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

"$dpmlab" gmm make --dim 8 --components 4 --train 4000 --val 500 --test 500 --quiet --out gmm >/dev/null
echo '{"training": {"resume_every": 50, "log_every": 50}}' >config.json
train=(train --data gmm --arch mlp --T 20 --batch 64 --max-steps 1000000 --threads 1 --quiet
       --config config.json)

# Starts a two-rank run into $1 in the background (its launcher's pid in $launcher) and waits
# until it has written a resume file.
start_run() {
  "${launch[@]}" -np 2 "$dpmlab" "${train[@]}" --out "$1" >"$1.log" 2>&1 &
  launcher=$!
  for _ in $(seq 600); do
    [ -f "$1/resume.safetensors" ] && return 0
    sleep 0.1
  done
  echo "mpi_ranks: no resume file after 60 s"; cat "$1.log"; exit 1
}

# The launcher's exit code, waiting at most $1 seconds (124: still running).
wait_for_launcher() {
  for _ in $(seq $(($1 * 10))); do
    if ! kill -0 "$launcher" 2>/dev/null; then
      wait "$launcher" && return 0 || return $?
    fi
    sleep 0.1
  done
  return 124
}

second_rank() { pgrep -P "$launcher" | tail -n 1; }

start_run interrupted
kill -INT "$(second_rank)"
code=0; wait_for_launcher 60 || code=$?
[ "$code" -eq 0 ] || { echo "mpi_ranks: SIGINT on one rank: exit code $code"; cat interrupted.log; exit 1; }
grep -q "Interrupted: the state is saved" interrupted.log ||
  { echo "mpi_ranks: SIGINT: no clean stop"; cat interrupted.log; exit 1; }
echo "mpi_ranks: SIGINT on rank 1 stopped both ranks cleanly"

start_run killed
kill -9 "$(second_rank)"
code=0; wait_for_launcher 60 || code=$?
[ "$code" -ne 124 ] || { echo "mpi_ranks: SIGKILL on one rank: still running after 60 s"; exit 1; }
[ "$code" -ne 0 ] || { echo "mpi_ranks: SIGKILL on one rank: exit code 0"; exit 1; }
echo "mpi_ranks: SIGKILL on rank 1 ended the run with exit code $code:"
grep -i "signal\|killed\|terminated" killed.log | head -3

# The last resume file loads: continue it for a few steps on one process.
steps=$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' killed/metrics.jsonl | tail -n 1)
"$dpmlab" train --data gmm --config killed/config.used.json --resume killed/resume.safetensors \
  --max-steps $((steps + 100)) --threads 1 --quiet --out resumed >resumed.log 2>&1 ||
  { echo "mpi_ranks: the resume file did not load"; cat resumed.log; exit 1; }
echo "mpi_ranks: the last resume file of the killed run loads and trains on"
