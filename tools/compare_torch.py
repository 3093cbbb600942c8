#!/usr/bin/python3
"""Compare dpmlab's forward and backward pass with its PyTorch twin (tools/torch_reference.py).

Takes a checkpoint (or makes one with `dpmlab model init`, checks it against PyTorch's default
initialisation, then moves the normalisation parameters and BatchNorm running statistics off
their trivial initial values), draws random x, t and r, runs `dpmlab model check` and the torch
twin on the same inputs, and reports the relative error max|a - b| / max|b| (a: dpmlab, b: torch
float32) of out_train, out_eval, grad_x, every parameter gradient and every buffer after the
train step. The twin also runs in float64 as the exact reference: it shows which side carries
a float32 error, and it tells the gradients that are zero in exact arithmetic (see scale_of).
Exit 0 on PASS, 1 on FAIL, and 0 with "skipped: ..." when torch is not installed (--skip-code
changes that code).

Example:
  /usr/bin/python3 tools/compare_torch.py --dpmlab build/apps/dpmlab --arch unet1d --length 64
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:  # the twin needs both; without them the comparison is skipped, not failed
    import numpy as np
    import torch
    MISSING = None
except ImportError as error:
    MISSING = error


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dpmlab", required=True, help="the dpmlab binary")
    parser.add_argument("--checkpoint", help="compare this checkpoint as it is (else: init one)")
    parser.add_argument("--arch", choices=["unet1d", "unet2d", "mlp"], help="for a fresh model")
    parser.add_argument("--length", type=int, default=64, help="unet1d vector length")
    parser.add_argument("--size", type=int, default=28, help="unet2d image height = width")
    parser.add_argument("--dim", type=int, default=64, help="mlp dimension N")
    parser.add_argument("--norm", choices=["batch", "group"], help="U-Net normalisation")
    parser.add_argument("--attention", action="store_true", help="U-Net self-attention")
    parser.add_argument("--conditioning", choices=["add", "film"], help="MLP time conditioning")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300, help="t is drawn from [0, steps)")
    parser.add_argument("--seed", type=int, default=1)
    # One thread by default: torch's OpenMP threads spin, and crawl on a loaded 2-core machine.
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative error")
    parser.add_argument("--summary-only", action="store_true",
                        help="list only the worst tensors of each kind and any failures")
    parser.add_argument("--workdir", help="keep the files here (default: a temporary dir)")
    parser.add_argument("--skip-code", type=int, default=0,
                        help="exit code when torch is missing (ctest: 77)")
    args = parser.parse_args()
    if not args.checkpoint and not args.arch:
        parser.error("give --checkpoint or --arch")
    return args


def init_checkpoint(args, path):
    command = [args.dpmlab, "model", "init", "--arch", args.arch, "--seed", str(args.seed),
               "--out", path]
    if args.arch == "unet1d":
        command += ["--length", str(args.length)]
    elif args.arch == "unet2d":
        command += ["--size", str(args.size)]
    else:
        command += ["--dim", str(args.dim)]
    if args.norm:
        command += ["--norm", args.norm]
    if args.attention:
        command += ["--attention"]
    if args.conditioning:
        command += ["--conditioning", args.conditioning]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def check_init(ref, path):
    """A fresh dpmlab model against PyTorch's default initialisation of the same layers: constant
    tensors (norm weights and biases, running statistics) equal, random ones (Linear and Conv
    weights and biases: U(-b, b), b = 1/sqrt(fan_in)) inside torch's range with a matching spread.
    Returns the failures (empty on success) and the worst spread deviation in standard errors."""
    tensors, metadata = ref.read_safetensors(path)
    model = ref.make_model(ref.read_config(metadata))
    fresh = {name: value.detach().to(torch.float64).numpy()
             for name, value in model.state_dict().items()}
    random_modules = {name for name, module in model.named_modules()
                      if isinstance(module, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))}
    failures, worst_sigma = [], 0.0
    for name, ours in tensors.items():
        module, theirs = name.rsplit(".", 1)[0], fresh[name]
        if module not in random_modules:
            if not np.array_equal(ours, theirs):
                failures.append(f"{name}: differs from torch's initial value {theirs.flat[0]:g}")
            continue
        weight = torch.from_numpy(fresh[module + ".weight"])
        bound = 1 / np.sqrt(torch.nn.init._calculate_fan_in_and_fan_out(weight)[0])
        # The sample std of n uniform draws has a relative standard error of sqrt(0.2 / n).
        sigma = abs(np.std(ours) / (bound / np.sqrt(3)) - 1) / np.sqrt(0.2 / ours.size)
        worst_sigma = max(worst_sigma, sigma)
        # Drawn in float32: a draw may round onto the float32 neighbour above the bound.
        limit = np.nextafter(np.float32(bound), np.float32(np.inf))
        if np.max(np.abs(theirs)) > limit or np.max(np.abs(ours)) > limit or sigma > 5:
            failures.append(f"{name}: max |value| {np.max(np.abs(ours)):.4g} (torch "
                            f"{np.max(np.abs(theirs)):.4g}, bound {bound:.4g}), spread off by "
                            f"{sigma:.1f} standard errors")
    return failures, worst_sigma


def perturb_norms(ref, path, rng):
    """Fresh norms are the identity (weight 1, bias 0, running mean 0 / var 1), which would hide
    mistakes in their affine part and in eval mode: move them, and rewrite the checkpoint."""
    tensors, metadata = ref.read_safetensors(path)
    norm_types = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)
    norm_names = {name for name, module in ref.make_model(ref.read_config(metadata)).named_modules()
                  if isinstance(module, norm_types)}
    for name, value in tensors.items():
        module, leaf = name.rsplit(".", 1)
        if module not in norm_names:
            continue
        if leaf == "weight":
            value[...] = 1 + 0.2 * rng.standard_normal(value.shape)
        elif leaf in ("bias", "running_mean"):
            value[...] = 0.2 * rng.standard_normal(value.shape)
        elif leaf == "running_var":
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif leaf == "num_batches_tracked":
            value[...] = 5
    ref.write_safetensors(path, tensors, metadata)


def output_shape(ref, checkpoint, args):
    _, metadata = ref.read_safetensors(checkpoint)
    config = ref.read_config(metadata, checkpoint)
    channels = config.get("data_channels", 1)
    if config["arch"] == "unet1d":
        return (channels, args.length)
    if config["arch"] == "unet2d":
        return (channels, args.size, args.size)
    return (config.get("dim", 64),)


def max_abs(array):
    return float(np.max(np.abs(array))) if array.size else 0.0


def scale_of(name, theirs, exact):
    """The denominator of name's relative error, and why when it is not max |torch|.

    A gradient that is zero in exact arithmetic (a conv bias feeding straight into a train-mode
    BatchNorm, which removes every per-channel shift) is pure rounding noise on both sides, so
    max |b| would compare noise with noise: such a tensor (float64 twin: zero to 1e-9 of its
    module's gradients) is measured against its module's largest gradient instead."""
    own = max_abs(theirs[name])
    if not name.startswith("grad."):
        return own, ""
    module = name.rsplit(".", 1)[0] + "."
    module_scale = max(max_abs(v) for n, v in exact.items() if n.startswith(module))
    if max_abs(exact[name]) > 1e-9 * module_scale:
        return own, ""
    return module_scale, f"relative to max |{module}* gradient| {module_scale:.3g}"


def relative_error(a, b, scale):
    """max |a - b| / scale (a plain max |a - b| when scale is 0)."""
    if a.shape != b.shape:
        return float("inf")
    diff = max_abs(a.astype(np.float64) - b.astype(np.float64))
    return diff / scale if scale > 0 else diff


def kind_of(name):
    if name.startswith("grad."):
        return "grad"
    if name.startswith("buffer."):
        return "buffer"
    return name


def main():
    args = parse_args()
    if MISSING is not None:
        print(f"skipped: python3-torch not installed ({sys.executable}: {MISSING})")
        return args.skip_code
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as ref

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the fresh twin of check_init
    with tempfile.TemporaryDirectory(prefix="compare_torch.") as tmp:
        work = args.workdir or tmp
        os.makedirs(work, exist_ok=True)
        rng = np.random.default_rng(args.seed)
        checkpoint = args.checkpoint
        init_failures, init_sigma = [], 0.0
        if not checkpoint:
            checkpoint = os.path.join(work, "model.safetensors")
            init_checkpoint(args, checkpoint)
            init_failures, init_sigma = check_init(ref, checkpoint)
            perturb_norms(ref, checkpoint, rng)

        shape = (args.batch,) + output_shape(ref, checkpoint, args)
        inputs = {"x": rng.standard_normal(shape).astype(np.float32),
                  "t": rng.integers(0, args.steps, args.batch).astype(np.float32),
                  "r": rng.standard_normal(shape).astype(np.float32)}
        input_path = os.path.join(work, "input.safetensors")
        ours_path = os.path.join(work, "dpmlab_out.safetensors")
        ref.write_safetensors(input_path, inputs)
        subprocess.run([args.dpmlab, "model", "check", "--checkpoint", checkpoint, "--input",
                        input_path, "--out", ours_path, "--threads", str(args.threads)],
                       check=True, stdout=subprocess.DEVNULL)
        ours, _ = ref.read_safetensors(ours_path)
        model = ref.load_model(checkpoint)
        theirs = dict(ref.run_check(model, inputs["x"], inputs["t"], inputs["r"]))
        exact = dict(ref.run_check(ref.load_model(checkpoint), inputs["x"], inputs["t"],
                                   inputs["r"], dtype=torch.float64))
    return report(args, model, shape, init_failures, init_sigma, ours, theirs, exact)


def report(args, model, shape, init_failures, init_sigma, ours, theirs, exact):
    """Prints the comparison (ours: dpmlab, theirs: torch float32, exact: torch float64) and
    returns the exit code."""
    label = args.checkpoint or f"{args.arch}{' ' + args.norm if args.norm else ''}" \
                               f"{' attention' if args.attention else ''}"
    params = sum(p.numel() for p in model.parameters())
    print(f"== {label}: x {list(shape)}, {params} parameters, tolerance {args.tolerance:g}")
    if not args.checkpoint:
        print(f"  init: {'FAIL' if init_failures else 'matches'} PyTorch's default initialisation"
              f" (constants exact, ranges within 1/sqrt(fan_in), worst spread {init_sigma:.1f}"
              " standard errors)")
        for failure in init_failures:
            print(f"    {failure}  FAIL")
    print("  dpmlab vs torch  (dpmlab vs f64, torch vs f64)  tensor")
    missing = sorted(set(theirs) ^ set(ours))
    scales = {name: scale_of(name, theirs, exact) for name in theirs}
    errors = {name: relative_error(ours[name], theirs[name], scales[name][0])
              for name in theirs if name in ours}
    failed = [name for name, e in errors.items() if not e <= args.tolerance]
    worst = {}
    for name, e in errors.items():
        kind = kind_of(name)
        if kind not in worst or e > errors[worst[kind]]:
            worst[kind] = name
    own_accuracy = {name: relative_error(ours[name], exact[name], scales[name][0])
                    for name in errors}
    for name, e in errors.items():
        if args.summary_only and name not in failed and name not in worst.values() \
                and not scales[name][1]:
            continue
        accuracy = f"({own_accuracy[name]:.1e}, " \
                   f"{relative_error(theirs[name], exact[name], scales[name][0]):.1e})"
        note = f"  [zero in exact arithmetic: {scales[name][1]}]" if scales[name][1] else ""
        print(f"  {e:10.3e}  {accuracy:20s}  {name}{note}{'' if e <= args.tolerance else '  FAIL'}")
    for name in missing:
        print(f"  missing on {'dpmlab' if name in theirs else 'torch'}'s side: {name}  FAIL")
    summary = ", ".join(f"{kind} {errors[name]:.2e}" for kind, name in sorted(worst.items()))
    verdict = "FAIL" if failed or missing or init_failures else "PASS"
    print(f"{verdict} {label}: max relative error {summary} "
          f"(worst grad: {worst.get('grad', '-')}); dpmlab vs float64 at most "
          f"{max(own_accuracy.values(), default=0):.2e}")
    return 1 if verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
