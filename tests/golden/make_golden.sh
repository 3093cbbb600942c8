#!/usr/bin/env bash
# Captures the golden outputs of tests/test_golden_outputs.cpp with a given dpmlab binary:
#   tests/golden/make_golden.sh DPMLAB [--inputs]
# --inputs also remakes inputs/ (the GMM data set and the two small trained networks); without it
# only expected/ is rewritten. Recapture only when a change of numbers is intended, and say so in
# the commit.
set -euo pipefail
dpmlab=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
if [ "${2:-}" = "--inputs" ]; then
  rm -rf "$here/inputs"
  mkdir -p "$here/inputs"
  cd "$here/inputs"
  "$dpmlab" gmm make --dim 8 --components 4 --train 600 --val 200 --test 200 --seed 1 --out gmm \
    --quiet --threads 1
  cat > mlp.json <<'JSON'
{"model": {"arch": "mlp", "width": 32, "depth": 2, "time_embedding_size": 16},
 "schedule": {"kind": "paper_linear", "T": 20},
 "training": {"batch_size": 64, "max_steps": 40, "max_epochs": 100, "min_epochs": 100}}
JSON
  cat > unet.json <<'JSON'
{"model": {"arch": "unet1d", "base_channels": 4, "channel_multipliers": [1, 2],
           "blocks_per_level": 1, "time_embedding_size": 8, "time_hidden_size": 16},
 "schedule": {"kind": "paper_linear", "T": 20},
 "objective": {"target": "v"},
 "training": {"batch_size": 32, "max_steps": 20, "max_epochs": 100, "min_epochs": 100}}
JSON
  "$dpmlab" train --data gmm --config mlp.json --out mlp-run --seed 2 --quiet --threads 1
  "$dpmlab" train --data gmm --config unet.json --out unet-run --seed 3 --quiet --threads 1
  mkdir -p mlp unet
  mv mlp-run/best.safetensors mlp/ && mv unet-run/best.safetensors unet/
  rm -rf mlp-run unet-run mlp.json unet.json gmm/config.used.json
fi
rm -rf "$here/expected"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^#' "$here/commands.txt" | while read -r name arguments; do
  [ -n "$name" ] || continue
  rm -rf "$work/run" && cp -r "$here/inputs" "$work/run"
  # shellcheck disable=SC2086
  (cd "$work/run" && "$dpmlab" $arguments --out "$name" --threads 1 --quiet >/dev/null)
  mkdir -p "$here/expected/$name"
  find "$work/run/$name" -maxdepth 1 \( -name '*.json' -o -name '*.csv' \) \
    -exec cp {} "$here/expected/$name/" \;
  echo "make_golden: $name: $(ls "$here/expected/$name" | tr '\n' ' ')"
done
