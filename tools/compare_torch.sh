#!/usr/bin/env bash
# Compares dpmlab's networks with their PyTorch twins (tools/compare_torch.py): forward in train
# and eval mode, every parameter gradient and the BatchNorm running statistics, within 1e-4
# relative, for unet1d [8, 1, 64], unet2d [4, 1, 28, 28], mlp dim 64 [8, 64], the U-Net's
# GroupNorm and attention variants and the MLP's FiLM conditioning.
# Usage: tools/compare_torch.sh [path/to/dpmlab]
#   without an argument it builds the dpmlab target in build/ (or $DPM_BUILD_DIR) first.
# Exit: 0 PASS, 1 FAIL, $COMPARE_TORCH_SKIP_CODE (default 0) when /usr/bin/python3 has no torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/torch_common.sh
source "$root/tools/torch_common.sh"
skip_without_torch "${COMPARE_TORCH_SKIP_CODE:-0}"
find_dpmlab "$@"

status=0
compare() {
  "$python" "$root/tools/compare_torch.py" --dpmlab "$dpmlab" --summary-only "$@" || status=1
}
compare --arch unet1d --length 64 --batch 8
compare --arch unet2d --size 28 --batch 4
compare --arch mlp --dim 64 --batch 8
compare --arch mlp --dim 64 --batch 8 --conditioning film
compare --arch unet1d --length 64 --batch 4 --norm group --attention
compare --arch unet2d --size 28 --batch 4 --attention
[ "$status" -eq 0 ] && echo "compare_torch: all PASS" || echo "compare_torch: FAIL"
exit "$status"
