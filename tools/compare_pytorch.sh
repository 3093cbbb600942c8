#!/usr/bin/env bash
# dpmlab against PyTorch on the same work, in one run: for mlp, unet1d and unet2d, the training
# step (`dpmlab bench`, batch 128, 2 threads) beside its PyTorch twin (tools/bench_torch.py, best
# of 1 and 2 threads), then the DM denoiser (`dpmlab bench --denoiser`). Every measurement runs in
# its own process, so each peak RSS is that measurement's alone. The machine is shared: compare
# the ratios, and read the load average printed with them.
# Usage: tools/compare_pytorch.sh [path/to/dpmlab]
#   without an argument it builds the dpmlab target in build/ (or $DPM_BUILD_DIR) first.
#   BENCH_STEPS (default 20) timed training steps, BENCH_DENOISER_RUNS (default 2) timed denoised
#   batches of 512 (about 20 s each), BENCH_THREADS (default 2) dpmlab's threads.
# OPENBLAS_CORETYPE is passed through as the environment sets it.
# Exit: 0 (also when /usr/bin/python3 cannot import torch: then it only says it skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/torch_common.sh
source "$root/tools/torch_common.sh"
skip_without_torch 0
find_dpmlab "$@"

steps=${BENCH_STEPS:-20}
threads=${BENCH_THREADS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"

measure() {  # name, dpmlab bench flags...
  local name=$1
  shift
  echo "measuring $name ..." >&2
  "$dpmlab" bench "$@" --threads "$threads" --json "$out/$name.ours.json" >/dev/null
  for torch_threads in 1 2; do
    PYTHONPATH="$root/tools" "$python" "$root/tools/bench_torch.py" "$out/$name.ours.json" \
      --threads "$torch_threads" >"$out/$name.torch$torch_threads.json"
  done
}
for model in mlp unet1d unet2d; do
  measure "$model" --model "$model" --batch 128 --steps "$steps"
done
measure denoiser --denoiser --steps "${BENCH_DENOISER_RUNS:-2}" --warmup 1

"$python" - "$out" <<'EOF'
import json, os, sys

out = sys.argv[1]
load = lambda name: json.load(open(os.path.join(out, name)))

def torch_best(name, key, lower_is_better=True):
    runs = [load(f"{name}.torch{n}.json") for n in (1, 2)]
    pick = min if lower_is_better else max
    return pick(runs, key=lambda r: r[key])

print(f"\ntraining step, batch 128 (dpmlab at {load('mlp.ours.json')['threads']} threads; "
      "torch best of 1 and 2 threads)")
print("| model | ours ms | torch ms (thr) | ours/torch | roofline ms | % of sgemm | sgemm GFLOP/s "
      "| ours RSS MB | torch RSS MB | ours infer ms | torch infer ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for model in ("mlp", "unet1d", "unet2d"):
    ours = load(f"{model}.ours.json")
    torch = torch_best(model, "step_ms_median")
    print(f"| {model} | {ours['step_ms_median']:.1f} | {torch['step_ms_median']:.1f} "
          f"({torch['threads']}) | {ours['step_ms_median'] / torch['step_ms_median']:.2f} "
          f"| {ours['roofline_step_ms']:.1f} | {ours['percent_of_sgemm']:.0f}% "
          f"| {ours['sgemm_gflops']:.0f} | {ours['peak_rss_mb']:.0f} | {torch['peak_rss_mb']:.0f} "
          f"| {ours['inference_ms_median']:.1f} | {torch['inference_ms_median']:.1f} |")

ours = load("denoiser.ours.json")
torch = torch_best("denoiser", "samples_per_s", lower_is_better=False)
print(f"\nDM denoiser: unet1d, T = {ours['T']}, {ours['snr_db']:g} dB, batch {ours['batch']}, "
      f"{ours['evaluations']} network evaluations per batch")
print("| | ours | torch (thr) | ours/torch |")
print("|---|---|---|---|")
print(f"| samples/s | {ours['samples_per_s']:.0f} | {torch['samples_per_s']:.0f} "
      f"({torch['threads']}) | {ours['samples_per_s'] / torch['samples_per_s']:.2f} |")
print(f"| ms per batch | {ours['batch_ms_median']:.0f} | {torch['batch_ms_median']:.0f} | "
      f"{ours['batch_ms_median'] / torch['batch_ms_median']:.2f} |")
print(f"| peak RSS MB | {ours['peak_rss_mb']:.0f} | {torch['peak_rss_mb']:.0f} | "
      f"{ours['peak_rss_mb'] / torch['peak_rss_mb']:.2f} |")
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
