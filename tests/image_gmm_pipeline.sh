#!/usr/bin/env bash
# The small variant of scripts/image_gmm.sh end to end: every stage writes what the next one
# reads, the benchmark report holds the exact references and both predictors, the grids are
# written, and a second run finds every stage done instead of redoing it.
# Usage: image_gmm_pipeline.sh SOURCE_DIR DPMLAB_BINARY
set -euo pipefail
source_dir=$1
dpmlab=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {
  DPMLAB=$dpmlab DPM_IMAGE_GMM_SMALL=1 DPM_IMAGE_GMM_DIR=$work/run "$source_dir/scripts/image_gmm.sh"
}

fail() {
  echo "image_gmm_pipeline: $*" >&2
  exit 1
}

run >"$work/first.log" 2>&1 || { cat "$work/first.log"; fail "the first run failed"; }
for file in gmm/data.safetensors gmm/gmm.safetensors gmm/samples.png unet2d/best.safetensors \
  mlp/best.safetensors unet2d-denoise/denoised.png mlp-denoise/denoised.png; do
  [ -s "$work/run/$file" ] || fail "$file was not written"
done
for model in unet2d mlp; do
  report=$work/run/$model-denoise/denoise_bench.md
  for row in '| - | - | cme |' '| - | - | lmmse |' '| network | 300 | mean-forwarding |' \
    '| network | 300 | tweedie |' 'denoised.png'; do
    grep -qF -- "$row" "$report" || fail "$report has no '$row'"
  done
done
# The oracle's rows once, in the U-Net's report; the MLP's has the same references.
grep -qF '| oracle | 300 | mean-forwarding |' "$work/run/unet2d-denoise/denoise_bench.md" ||
  fail "the U-Net's report has no oracle rows"
cme_rows() { grep '^,0,cme,' "$work/run/$1-denoise/nmse.csv" | cut -d, -f1-10; }
[ "$(cme_rows unet2d)" = "$(cme_rows mlp)" ] || fail "the two reports' CME rows differ"

run >"$work/second.log" 2>&1 || { cat "$work/second.log"; fail "the second run failed"; }
for stage in "fit: done" "train unet2d: done" "train mlp: done" "bench unet2d: done" \
  "bench mlp: done"; do
  grep -qF "$stage" "$work/second.log" || { cat "$work/second.log"; fail "no '$stage'"; }
done
echo "image_gmm_pipeline: passed"
