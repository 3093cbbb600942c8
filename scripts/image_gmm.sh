#!/usr/bin/env bash
# The paper's image experiment as one pipeline (docs/results.md, "The image GMM: a K = 128 GMM of
# Fashion-MNIST"): fit a K = 128 full-covariance GMM to the 60,000 Fashion-MNIST training images
# and draw a 100k / 10k / 10k data set from it, train the 2-D U-Net and the residual MLP on the
# samples (one thread each, side by side), then measure both against the exact CME, and the U-Net
# also against eps* (`dpmlab denoise-bench`, with a grid of denoised images).
#
# Every stage resumes: an interrupted fit continues from its fit_state.safetensors, an
# interrupted training from its resume.safetensors, and a finished stage is skipped, so running
# the script again after a stop (Ctrl-C, a lost session) goes on where it stopped. At full size
# the fit takes about 2 h and the trainings 80 min on 2 cores (the configs' budgets).
# Environment:
#   DPM_IMAGE_GMM_DIR      output directory (default runs/image-gmm)
#   DPM_IMAGE_GMM_SMALL=1  the small variant the tests run: K = 4 on 2,000 images, 3 EM
#                          iterations, 1,000 / 64 / 64 samples, 3 training steps, 8 test samples
#                          at 0 and 20 dB
#   DPM_IMAGE_GMM_SAMPLES  test samples of the benchmark (default 1000)
#   DPM_IMAGE_GMM_SNR      SNRs of the benchmark in dB (default -20:30:5)
#   DPMLAB                 the dpmlab binary to use (default: build it into build/)
#   DPM_IMAGE_GMM_LAUNCH   a launcher for the trainings and the benchmarks, e.g. "mpirun -np 4"
#                          or "srun": data-parallel training and sharded test samples
#                          (docs/distributed.md), the trainings one after the other; the fit
#                          runs as one process
set -euo pipefail
cd "$(dirname "$0")/.."

main() {
  local dpmlab=${DPMLAB:-}
  if [ -z "$dpmlab" ]; then
    DPM_BUILD_TARGETS=dpmlab ./scripts/build.sh
    dpmlab=$PWD/build/apps/dpmlab
  fi
  local run=${DPM_IMAGE_GMM_DIR:-runs/image-gmm}
  local samples=${DPM_IMAGE_GMM_SAMPLES:-1000} snr=${DPM_IMAGE_GMM_SNR:--20:30:5}
  local fit=(--components 128 --iters 100 --sample 100000 --val 10000 --test 10000)
  local train=() launch=()
  read -r -a launch <<<"${DPM_IMAGE_GMM_LAUNCH:-}"
  dpmlab=("${launch[@]}" "$dpmlab")
  if [ "${DPM_IMAGE_GMM_SMALL:-0}" = 1 ]; then
    fit=(--components 4 --max-samples 2000 --iters 3 --sample 1000 --val 64 --test 64)
    train=(--max-steps 3)
    samples=${DPM_IMAGE_GMM_SAMPLES:-8}
    snr=${DPM_IMAGE_GMM_SNR:-0,20}
  fi
  mkdir -p "$run"

  fit_stage "${dpmlab[-1]}" "$run/gmm" "${fit[@]}"
  local model pids=()
  for model in unet2d mlp; do
    # Side by side on one machine; one after the other under a launcher, which owns the cores
    # (and two OpenMPI launchers starting at once can race for their session directory).
    if [ ${#launch[@]} -eq 0 ]; then
      train_stage "$run" "$model" "${train[@]}" &
      pids+=($!)
    else
      train_stage "$run" "$model" "${train[@]}"
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  # The oracle's rows once, with the U-Net: the MLP's run sees the same observations (same seed
  # and samples), and at 784 dimensions eps* is most of a run's time.
  bench_stage "$run" unet2d --samples "$samples" --snr "$snr"
  bench_stage "$run" mlp --samples "$samples" --snr "$snr" --predictors network
  echo "Results: $run/gmm/samples.png, $run/{unet2d,mlp}-denoise/denoise_bench.md and denoised.png"
}

# The EM fit and the data set drawn from it; done once DIR/data.safetensors exists.
fit_stage() {
  local dpmlab=$1 dir=$2
  shift 2
  if [ -f "$dir/data.safetensors" ]; then
    echo "fit: done ($dir/data.safetensors)"
    return
  fi
  local resume=()
  [ -f "$dir/fit_state.safetensors" ] && resume=(--resume "$dir/fit_state.safetensors")
  echo "fit: $dir ${resume[*]:+(resuming)}"
  "$dpmlab" gmm fit --data fashion-mnist "$@" "${resume[@]}" --out "$dir"
}

# One network trained on the samples, one thread (per rank); done once RUN/MODEL/finished exists.
# "${dpmlab[@]}" is the binary after its launcher, if any.
train_stage() {
  local run=$1 model=$2
  shift 2
  local dir=$run/$model
  if [ -f "$dir/finished" ]; then
    echo "train $model: done ($dir)"
    return
  fi
  local resume=()
  [ -f "$dir/resume.safetensors" ] && resume=(--resume "$dir/resume.safetensors")
  echo "train $model: $dir ${resume[*]:+(resuming)} (log: $run/$model.log)"
  "${dpmlab[@]}" train --data "$run/gmm" --config "configs/fmnist_gmm128_$model.json" --threads 1 \
    "$@" "${resume[@]}" --out "$dir" >>"$run/$model.log" 2>&1
  touch "$dir/finished"
}

# The denoising benchmark of one network; done once its report exists.
bench_stage() {
  local run=$1 model=$2
  shift 2
  local out=$run/$model-denoise
  if [ -f "$out/denoise_bench.md" ]; then
    echo "bench $model: done ($out)"
    return
  fi
  echo "bench $model: $out"
  "${dpmlab[@]}" denoise-bench --checkpoint "$run/$model/best.safetensors" --experiments nmse \
    --estimators cheap --T 300 "$@" --out "$out"
}

main "$@"
