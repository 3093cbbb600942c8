#!/usr/bin/env bash
# The main job, dpmlab's quickstart. On a fresh Debian machine it installs what is missing, builds
# the dpmlab CLI, makes the paper's random GMM (docs/protocol.md, The GMM protocol), trains the
# default DM on it (the residual MLP, configs/quickstart.json: about 9 minutes on 2 cores),
# benchmarks the DM denoisers against the CME (`dpmlab denoise-bench`), audits the network's
# Lipschitz constants (`dpmlab audit`) and writes runs/quickstart/report.md.
#
# Running it again reuses the build, the data and a finished training run; an interrupted
# training run (Ctrl-C) is resumed. Environment:
#   DPM_QUICKSTART_DIR    run directory (default runs/quickstart)
#   DPM_QUICKSTART_STEPS  training steps instead of the config's (a smaller run, e.g. for a test)
#   DPM_QUICKSTART_SMALL  1: small denoise-bench and audit sizes as well (a smoke run)
#   DPM_THREADS           threads for every stage (default: all cores)
set -euo pipefail

main() {
  cd "$(dirname "$0")/.."
  ./scripts/install-deps.sh
  DPM_BUILD_TARGETS=dpmlab ./scripts/build.sh

  local dpmlab=$PWD/build/apps/dpmlab
  local run=${DPM_QUICKSTART_DIR:-runs/quickstart}
  local threads=(--threads "${DPM_THREADS:-0}")
  mkdir -p "$run"
  local started=$SECONDS

  stage "1/4 the paper's random GMM (N = 64, K = 128) and 100k/10k/10k samples"
  "$dpmlab" gmm make --out "$run/gmm" "${threads[@]}" | tee "$run/gmm.log"

  stage "2/4 training the default DM (configs/quickstart.json)"
  train "$dpmlab" "$run" "${threads[@]}"

  # Sizes that keep this stage near 1.5 minutes on 2 cores; `dpmlab denoise-bench --help` has more.
  local sizes=(--samples 128 --T 300 --mc-samples 4 --mc-M 1,4,16 --step-snr -10,10 --mc-snr 0
    --mismatch-snr 0)
  [ "${DPM_QUICKSTART_SMALL:-0}" = 1 ] && sizes=(--samples 16 --snr -10,0,10 --T 50 --mc-M 1,4
    --mismatch -2,0,2)
  stage "3/4 denoise-bench: the DM denoisers beside the CME, LMMSE and LS"
  "$dpmlab" denoise-bench --gmm "$run/gmm/gmm.safetensors" \
    --checkpoint "$run/train/best.safetensors" --out "$run/denoise-bench" "${threads[@]}" \
    "${sizes[@]}"

  local audit_small=()
  [ "${DPM_QUICKSTART_SMALL:-0}" = 1 ] && audit_small=(--t-grid 1,10,100 --snr 0 --samples 4)
  stage "4/4 the Lipschitz audit"
  "$dpmlab" audit "$run/train/best.safetensors" --gmm "$run/gmm/gmm.safetensors" \
    --out "$run/audit" "${threads[@]}" "${audit_small[@]}"

  write_report "$run" "$((SECONDS - started))"
  echo
  echo "run.sh: done in $((SECONDS - started)) s; the report is $run/report.md"
}

stage() { printf '\n== %s\n' "$1"; }

# Trains unless a finished run is there; resumes an interrupted one. A run is finished when
# `dpmlab train` exited 0, which run.sh records as train/finished.
train() {
  local dpmlab=$1 run=$2
  shift 2
  local dir=$run/train
  if [ -f "$dir/finished" ] && [ -f "$dir/best.safetensors" ]; then
    echo "reusing the finished training run in $dir (delete it to train again)"
    return
  fi
  local args=(--data "$run/gmm" --config configs/quickstart.json --out "$dir" "$@")
  if [ -f "$dir/resume.safetensors" ] && [ -f "$dir/config.used.json" ]; then
    echo "resuming the interrupted training run in $dir"
    args=(--data "$run/gmm" --config "$dir/config.used.json" --resume "$dir/resume.safetensors"
      --out "$dir" "$@")
  fi
  if [ -n "${DPM_QUICKSTART_STEPS:-}" ]; then
    args+=(--max-steps "$DPM_QUICKSTART_STEPS")
  fi
  "$dpmlab" train "${args[@]}" | tee "$dir.log"
  touch "$dir/finished"
}

# report.md: a summary of the figures that matter, then the tables of the three stages and their
# plots.
write_report() {
  local run=$1 seconds=$2 report=$1/report.md
  {
    echo "# dpmlab quickstart report"
    echo
    echo "Made by \`./scripts/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${seconds} s"
    echo "($(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo "Every stage's exact configuration is in its directory's \`config.used.json\`."
    echo
    echo "## Summary"
    echo
    echo "**Training.** $(grep -E '^Best validation loss' "$run/train.log" || echo 'no training summary')"
    echo
    echo "**Denoising** (the full tables below):"
    summary_of "$run/denoise-bench/denoise_bench.md"
    echo
    echo "**Lipschitz audit** (the full tables below):"
    summary_of "$run/audit/audit.md"
    echo
    echo "## Data"
    echo
    cat "$run/gmm.log"
    echo
    echo "## Training"
    echo
    echo '```'
    grep -E '^(Stopped|Finished|Best|Wrote)' "$run/train.log" || true
    echo '```'
    echo
    demote_headings <"$run/denoise-bench/denoise_bench.md"
    embed_plots "$run" denoise-bench
    echo
    echo
    demote_headings <"$run/audit/audit.md"
    embed_plots "$run" audit
  } >"$report.tmp"
  mv "$report.tmp" "$report"
}

# The body of a stage report's "## Summary" section (up to its next heading).
summary_of() {
  awk '/^## Summary/ { inside = 1; next } inside && /^#/ { exit } inside' "$1"
}

# The stages' markdown starts at level 1; inside the report its title becomes a level-2 heading.
demote_headings() { sed -E 's/^(#+) /\1# /'; }

embed_plots() {
  local run=$1 stage=$2 png
  for png in "$run/$stage"/*.png; do
    [ -f "$png" ] || continue
    printf '\n![%s](%s)\n' "$(basename "$png" .png)" "$stage/$(basename "$png")"
  done
}

main "$@"
