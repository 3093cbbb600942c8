#!/usr/bin/python3
"""The PyTorch twin of `dpmlab bench` (apps/cmd_bench.cpp), on the twins of tools/torch_reference.py.

Reads the JSON `dpmlab bench --json` wrote and repeats its measurement in PyTorch with the same
network config, batch, steps and warm-up, at --threads threads, and prints one JSON object:
  train mode:    the DPM L_simple step (t uniform in [0, T), x_t = sqrt(abar_t) x0 +
                 sqrt(1 - abar_t) eps, loss = mean (eps_theta(x_t, t) - eps)^2, zero_grad, backward,
                 Adam lr 1e-4): step_ms_median / step_ms_min, eval-mode inference_ms_median, and
                 inference_batches (the other batch sizes dpmlab timed, same fields as dpmlab's);
  denoiser mode: mean forwarding from dpmlab's start step down to 1 (the same number of network
                 evaluations) in eval mode under no_grad: batch_ms_median, samples_per_s.
peak_rss_mb is this process's ru_maxrss. The schedule's betas change values, not the cost, so a
plain linear schedule stands in for dpmlab's.
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch

import torch_reference

T = 300


def timed(warmup, repeats, fn):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        ms.append(1000 * (time.perf_counter() - start))
    return ms


def sample_shape(ours):
    config = ours["config"]
    if config["arch"] == "mlp":
        return [config["dim"]]
    if config["arch"] == "unet1d":
        return [config["data_channels"], 64]
    return [config["data_channels"], 28, 28]


def alpha_bars():
    betas = torch.linspace(1.0 / (1.0 + 1e4), 0.035, T, dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def bench_training(ours):
    model = torch_reference.make_model(ours["config"])
    model.train()
    batch = ours["batch"]
    x0 = torch.randn([batch] + sample_shape(ours))
    _, abar = alpha_bars()
    abar = abar.to(torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    view = [batch] + [1] * (x0.dim() - 1)

    def step():
        optimizer.zero_grad()
        t = torch.randint(0, T, (batch,))
        eps = torch.randn_like(x0)
        a = abar[t].view(view)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = torch.mean((model(x_t, t) - eps) ** 2)
        loss.item()
        loss.backward()
        optimizer.step()

    step_ms = timed(ours["warmup"], ours["steps"], step)
    model.eval()
    repeats = max(ours["steps"], 3)

    def inference(size):
        x = torch.randn([size] + sample_shape(ours))
        t = torch.arange(size) % T
        with torch.no_grad():
            return timed(1, repeats, lambda: model(x, t))

    inference_ms = inference(batch)
    others = []
    for entry in ours.get("inference_batches", []):
        ms = inference(entry["batch"])
        others.append({"batch": entry["batch"], "ms_median": statistics.median(ms),
                       "ms_min": min(ms)})
    return {"step_ms_median": statistics.median(step_ms), "step_ms_min": min(step_ms),
            "inference_ms_median": statistics.median(inference_ms), "inference_batches": others}


def bench_denoiser(ours):
    model = torch_reference.make_model({"arch": "unet1d", "data_channels": 1})
    model.eval()
    batch, start = ours["batch"], ours["start_step"]
    betas, abar = alpha_bars()
    y = torch.randn(batch, 1, 64)

    def denoise():
        x = y.clone()
        with torch.no_grad():
            for t in range(start, 0, -1):
                eps = model(x, torch.full((batch,), t - 1, dtype=torch.long))
                beta, a = float(betas[t - 1]), float(abar[t - 1])
                x = (x - beta / math.sqrt(1 - a) * eps) / math.sqrt(1 - beta)
        return x

    ms = timed(ours["warmup"], ours["runs"], denoise)
    batch_ms = statistics.median(ms)
    return {"batch_ms_median": batch_ms, "batch_ms_min": min(ms),
            "samples_per_s": batch / (batch_ms / 1000)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dpmlab_json", help="the file `dpmlab bench --json` wrote")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    with open(args.dpmlab_json) as f:
        ours = json.load(f)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = bench_denoiser(ours) if ours["mode"] == "denoiser" else bench_training(ours)
    result["threads"] = args.threads
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
