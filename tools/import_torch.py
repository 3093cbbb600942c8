#!/usr/bin/python3
"""`dpmlab model import` end to end: a PyTorch twin (tools/torch_reference.py) with its BatchNorm
statistics moved off their initial values, its state_dict saved as safetensors.torch.save_file
saves it (num_batches_tracked as int64), imported, and the checkpoint checked: every tensor equal
to the state_dict's, the schedule and prediction target in its metadata, and the network's
outputs on a fixed input (`dpmlab model check`: a train-mode pass, then an eval-mode pass) equal
to PyTorch's within the tolerance (relative to max |torch|).
Exit 0 on PASS, 1 on FAIL, --skip-code (default 0) when torch is not installed.

Example:
  /usr/bin/python3 tools/import_torch.py --dpmlab build/apps/dpmlab --arch mlp --dim 64
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

try:  # without torch the test is skipped, not failed
    import numpy as np
    import torch
    MISSING = None
except ImportError as error:
    MISSING = error


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dpmlab", required=True, help="the dpmlab binary")
    parser.add_argument("--arch", required=True, choices=["unet1d", "unet2d", "mlp"])
    parser.add_argument("--length", type=int, default=64, help="unet1d vector length")
    parser.add_argument("--size", type=int, default=28, help="unet2d image height = width")
    parser.add_argument("--dim", type=int, default=64, help="mlp dimension N")
    parser.add_argument("--attention", action="store_true", help="U-Net self-attention")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--steps", type=int, default=100, help="the schedule's T")
    parser.add_argument("--target", default="v")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max relative error")
    parser.add_argument("--skip-code", type=int, default=0,
                        help="exit code when torch is missing (ctest: 77)")
    return parser.parse_args()


def twin_config(args):
    """The model config dpmlab builds for these flags (as `dpmlab model init` does)."""
    if args.arch == "mlp":
        return {"arch": "mlp", "dim": args.dim, "conditioning": "add"}
    return {"arch": args.arch, "data_channels": 1, "norm": "batch", "attention": args.attention}


def sample_shape(args):
    if args.arch == "mlp":
        return (args.dim,)
    return (1, args.length) if args.arch == "unet1d" else (1, args.size, args.size)


def save_state_dict(path, state):
    """What safetensors.torch.save_file(state, path) writes (the package need not be installed):
    a sorted header, and the data grouped by dtype and sorted by name within it."""
    dtypes = {torch.float32: ("F32", 0), torch.int64: ("I64", 1)}
    order = sorted(state, key=lambda name: (dtypes[state[name].dtype][1], name))
    header, chunks, offset = {}, [], 0
    for name in order:
        raw = state[name].contiguous().numpy().tobytes()
        header[name] = {"dtype": dtypes[state[name].dtype][0], "shape": list(state[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def perturb_batch_norms(model, rng):
    """Fresh BatchNorms hold mean 0, variance 1 and a zero step count, which would hide a buffer
    imported wrongly."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.from_numpy(0.2 * rng.standard_normal(
                module.running_mean.shape)))
            module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 1.5,
                                                                  module.running_var.shape)))
            module.num_batches_tracked.fill_(7)


def import_command(args, state_dict_path, out):
    command = [args.dpmlab, "model", "import", "--state-dict", state_dict_path, "--arch",
               args.arch, "--schedule", args.schedule, "--T", str(args.steps), "--target",
               args.target, "--out", out]
    if args.arch == "mlp":
        command += ["--dim", str(args.dim)]
    else:
        command += ["--length", str(args.length)] if args.arch == "unet1d" else \
                   ["--size", str(args.size)]
        command += ["--attention"] if args.attention else []
    return command


def check_checkpoint(ref, path, state, args):
    """The imported file against the state_dict and the flags; returns the failures."""
    tensors, metadata = ref.read_safetensors(path)
    failures = [f"{name}: missing" for name in state if name not in tensors]
    failures += [f"{name}: not in the state_dict" for name in tensors if name not in state]
    for name, value in state.items():
        if name in tensors and not np.array_equal(tensors[name],
                                                  value.numpy().astype(np.float32)):
            failures.append(f"{name}: differs from the state_dict")
    schedule = json.loads(metadata.get("dpmlab.schedule", "{}"))
    objective = json.loads(metadata.get("dpmlab.objective", "{}"))
    if schedule != {"kind": args.schedule, "T": args.steps}:
        failures.append(f"metadata dpmlab.schedule is {schedule}")
    if objective.get("target") != args.target:
        failures.append(f"metadata dpmlab.objective is {objective}")
    config = ref.read_config(metadata, path)
    if any(config.get(field) != value for field, value in twin_config(args).items()):
        failures.append(f"metadata dpmlab.config is {config}")
    return failures


def relative_error(ours, theirs):
    scale = float(np.max(np.abs(theirs)))
    diff = float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
    return diff / scale if scale > 0 else diff


def main():
    args = parse_args()
    if MISSING is not None:
        print(f"skipped: python3-torch not installed ({sys.executable}: {MISSING})")
        return args.skip_code
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as ref

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = ref.make_model(twin_config(args))
    with torch.no_grad():
        perturb_batch_norms(model, rng)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}

    shape = (args.batch,) + sample_shape(args)
    inputs = {"x": rng.standard_normal(shape).astype(np.float32),
              "t": rng.integers(0, args.steps, args.batch).astype(np.float32),
              "r": rng.standard_normal(shape).astype(np.float32)}
    with tempfile.TemporaryDirectory(prefix="import_torch.") as work:
        state_dict_path = os.path.join(work, "twin.safetensors")
        checkpoint = os.path.join(work, "imported.safetensors")
        input_path = os.path.join(work, "input.safetensors")
        ours_path = os.path.join(work, "dpmlab_out.safetensors")
        save_state_dict(state_dict_path, state)
        subprocess.run(import_command(args, state_dict_path, checkpoint), check=True,
                       stdout=subprocess.DEVNULL)
        failures = check_checkpoint(ref, checkpoint, state, args)
        ref.write_safetensors(input_path, inputs)
        subprocess.run([args.dpmlab, "model", "check", "--checkpoint", checkpoint, "--input",
                        input_path, "--out", ours_path, "--threads", "1"], check=True,
                       stdout=subprocess.DEVNULL)
        ours, _ = ref.read_safetensors(ours_path)
    theirs = dict(ref.run_check(model, inputs["x"], inputs["t"], inputs["r"]))
    errors = {name: relative_error(ours[name], theirs[name]) for name in ("out_train", "out_eval")}
    failures += [f"{name}: relative error {e:.2e} above {args.tolerance:g}"
                 for name, e in errors.items() if not e <= args.tolerance]
    label = f"{args.arch}{' attention' if args.attention else ''}"
    for failure in failures:
        print(f"  {failure}  FAIL")
    print(f"{'FAIL' if failures else 'PASS'} import {label}: {len(state)} tensors equal, schedule "
          f"{args.schedule} T={args.steps}, target {args.target}; out_train "
          f"{errors['out_train']:.2e}, out_eval {errors['out_eval']:.2e} relative to PyTorch")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
