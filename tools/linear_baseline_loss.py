#!/usr/bin/python3
"""L_simple of the best *linear* predictor on a GMM's data: the loss a network reaches if it
learns only the data's covariance, to set beside a trained network's validation loss.

For data of covariance S (eigenvalues lam_i; the predictor may add a constant, so the mean does
not matter) and x_t = a x0 + s eps (a^2 = abar_t, s^2 = 1 - abar_t), the best linear estimates
give, per dimension,
  eps: mean_i a^2 lam_i / (a^2 lam_i + s^2)
  x0:  mean_i s^2 lam_i / (a^2 lam_i + s^2)
  v:   the x0 error times 1 / s^2 (v = a eps - s x0, so v - v_hat = (x0_hat - x0) / s)
averaged over t = 1..T uniformly, as L_simple draws t. For white unit-variance data the eps loss is
mean(abar_t). S is the mixture covariance sum_k w_k (C_k + mu_k mu_k^T) - m m^T in float64.

Example (numpy comes with Debian's python3-numpy, a dependency of python3-torch):
  /usr/bin/python3 tools/linear_baseline_loss.py runs/issue4/gmm/gmm.safetensors --T 300
Only the paper-linear schedule (docs/protocol.md, Schedules: beta_1 = 1/(1 + 10^4), beta_T from its
table) is built in.
"""
import argparse
import json
import struct
import sys

import numpy as np

PAPER_BETA_T = {5: 0.95, 10: 0.7, 50: 0.2, 100: 0.1, 300: 0.035, 500: 0.02, 1000: 0.01, 10000: 0.001}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{len(blob)} bytes, shorter than the 8-byte header length")
    header_size = struct.unpack("<Q", blob[:8])[0]
    if header_size > len(blob) - 8:
        raise ValueError(f"header length {header_size} runs past the end of the file")
    header = json.loads(blob[8:8 + header_size])
    data = blob[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            sys.exit(f"{path}: tensor '{name}' has dtype {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"tensor '{name}' has data_offsets {begin}..{end} outside the data")
        tensors[name] = np.frombuffer(data[begin:end], dtype=np.float32).reshape(entry["shape"])
    return tensors


def load_gmm(path):
    """(weights [K], means [K, N], covariances [K, N, N]) in float64; exits naming the file and
    what is wrong with it."""
    try:
        tensors = read_safetensors(path)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: cannot read it as a safetensors file ({e})")
    for name in ("weights", "means", "covariances"):
        if name not in tensors:
            sys.exit(f"{path}: no tensor '{name}' (expected a dpmlab GMM file)")
    return tuple(tensors[name].astype(np.float64) for name in ("weights", "means", "covariances"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gmm", help="a gmm.safetensors written by `dpmlab gmm make` or `gmm fit`")
    parser.add_argument("--T", type=int, default=300, help="steps of the paper-linear schedule")
    args = parser.parse_args()

    w, mu, cov = load_gmm(args.gmm)
    mean = w @ mu
    covariance = (np.einsum("k,kij->ij", w, cov) + np.einsum("k,ki,kj->ij", w, mu, mu) -
                  np.outer(mean, mean))
    lam = np.linalg.eigvalsh(covariance)

    beta_T = PAPER_BETA_T.get(args.T, 0.035)
    beta = np.linspace(1.0 / (1.0 + 1e4), beta_T, args.T)
    abar = np.cumprod(1.0 - beta)[:, None]
    a2, s2 = abar, 1.0 - abar
    eps_loss = (a2 * lam / (a2 * lam + s2)).mean(axis=1)
    x0_loss = (s2 * lam / (a2 * lam + s2)).mean(axis=1)
    v_loss = x0_loss / s2[:, 0]

    print(f"data: {len(lam)} dims, power per entry {lam.mean():.4f}, "
          f"covariance eigenvalues {lam.min():.4f} .. {lam.max():.4f}, |mean| {np.linalg.norm(mean):.3g}")
    print(f"paper-linear schedule, T = {args.T} (beta_T = {beta_T})")
    print("| target | best linear predictor | white-Gaussian predictor |")
    print("|---|---|---|")
    print(f"| eps | {eps_loss.mean():.4f} | {abar.mean():.4f} |")
    print(f"| x0 | {x0_loss.mean():.4f} | {(s2[:, 0]).mean():.4f} |")
    print(f"| v | {v_loss.mean():.4f} | 1.0000 |")


if __name__ == "__main__":
    main()
