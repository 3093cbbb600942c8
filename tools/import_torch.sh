#!/usr/bin/env bash
# `dpmlab model import` end to end with the PyTorch twins (tools/import_torch.py): a state_dict
# saved as safetensors, imported, and the checkpoint's tensors, metadata and outputs (within 1e-5
# relative) checked, for the MLP, the 2-D U-Net and the 1-D U-Net with attention.
# Usage: tools/import_torch.sh [path/to/dpmlab]
#   without an argument it builds the dpmlab target in build/ (or $DPM_BUILD_DIR) first.
# Exit: 0 PASS, 1 FAIL, $IMPORT_TORCH_SKIP_CODE (default 0) when /usr/bin/python3 has no torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/torch_common.sh
source "$root/tools/torch_common.sh"
skip_without_torch "${IMPORT_TORCH_SKIP_CODE:-0}"
find_dpmlab "$@"

status=0
check() {
  "$python" "$root/tools/import_torch.py" --dpmlab "$dpmlab" "$@" || status=1
}
check --arch mlp --dim 64
check --arch unet2d --size 28
check --arch unet1d --length 64 --attention --schedule paper_linear --steps 300 --target eps
[ "$status" -eq 0 ] && echo "import_torch: all PASS" || echo "import_torch: FAIL"
exit "$status"
