#!/usr/bin/env bash
# Trains the residual MLP and the paper's U-Net 1-D on the paper's random GMM (T = 300) side by
# side, one thread each, then measures both against the exact CME and the exact eps*
# (`dpmlab denoise-bench`) and evaluates their NLL bounds (`dpmlab bound`): the experiment of
# docs/results.md, "Trained DMs on the paper's GMM". About an hour on 2 cores.
# Environment:
#   DPM_TRAINED_GMM_DIR    output directory (default runs/trained-gmm)
#   DPM_TRAINED_GMM_STEPS  training steps instead of the configs' (a smaller run, e.g. a smoke test)
#   DPM_TRAINED_GMM_SAMPLES  test samples of the benchmark and the bound (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."

main() {
  DPM_BUILD_TARGETS=dpmlab ./scripts/build.sh
  local dpmlab=$PWD/build/apps/dpmlab
  local run=${DPM_TRAINED_GMM_DIR:-runs/trained-gmm}
  local samples=${DPM_TRAINED_GMM_SAMPLES:-1000}
  local steps=()
  [ -n "${DPM_TRAINED_GMM_STEPS:-}" ] && steps=(--max-steps "$DPM_TRAINED_GMM_STEPS")
  mkdir -p "$run"

  # 1M training samples: the runs visit up to 8M samples, so fresh ones keep them from
  # memorising a smaller set.
  "$dpmlab" gmm make --train 1000000 --out "$run/gmm" --quiet

  local model pids=()
  for model in mlp unet1d; do
    "$dpmlab" train --data "$run/gmm" --config "configs/gmm_$model.json" --threads 1 \
      "${steps[@]}" --out "$run/$model" >"$run/$model.log" 2>&1 &
    pids+=($!)
  done
  echo "Training the MLP and the U-Net 1-D (logs: $run/mlp.log, $run/unet1d.log)..."
  for pid in "${pids[@]}"; do wait "$pid"; done

  for model in mlp unet1d; do
    "$dpmlab" denoise-bench --checkpoint "$run/$model/best.safetensors" --experiments nmse \
      --estimators cheap --T 300 --samples "$samples" --quiet --out "$run/$model-denoise"
    "$dpmlab" bound --checkpoint "$run/$model/best.safetensors" --samples "$samples" --quiet \
      --out "$run/$model-bound"
  done
  echo "Results: $run/{mlp,unet1d}-denoise/denoise_bench.md and $run/{mlp,unet1d}-bound/bound.md"
}

main "$@"
