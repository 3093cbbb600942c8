#!/usr/bin/python3
"""L_simple (v target) of the exact posterior mean on a GMM's data: the floor a trained network's
validation loss can reach, to set beside it and beside tools/linear_baseline_loss.py's linear one.

For x_t = a x0 + s eps (a^2 = abar_t, s^2 = 1 - abar_t) the best v-prediction has error
(x0 - E[x0 | x_t]) / s, and E[x0 | x_t] is closed form for a GMM prior: each component's Wiener
estimate mu_k + a C_k (a^2 C_k + s^2 I)^{-1} (x_t - a mu_k), weighted by its posterior
responsibility. Monte Carlo over fresh GMM samples and noise, every --stride-th step, in float64.

Example: /usr/bin/python3 tools/oracle_loss.py runs/issue4/gmm/gmm.safetensors --samples 1000
"""
import argparse

import numpy as np

from linear_baseline_loss import PAPER_BETA_T, load_gmm


def posterior_mean(x_t, a2, weights, means, covariances):
    a, s2 = np.sqrt(a2), 1.0 - a2
    dim = means.shape[1]
    log_resp = np.empty((x_t.shape[0], len(weights)))
    estimates = np.empty((len(weights),) + x_t.shape)
    for k, (w, mu, cov) in enumerate(zip(weights, means, covariances)):
        chol = np.linalg.cholesky(a2 * cov + s2 * np.eye(dim))
        z = np.linalg.solve(chol, (x_t - a * mu).T)
        log_resp[:, k] = np.log(w) - 0.5 * (z * z).sum(0) - np.log(np.diag(chol)).sum()
        estimates[k] = mu + a * np.linalg.solve(chol.T, z).T @ cov
    resp = np.exp(log_resp - log_resp.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    return np.einsum("mk,kmd->md", resp, estimates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gmm", help="a gmm.safetensors written by `dpmlab gmm make` or `gmm fit`")
    parser.add_argument("--T", type=int, default=300, help="steps of the paper-linear schedule")
    parser.add_argument("--samples", type=int, default=1000, help="x0 draws per step")
    parser.add_argument("--stride", type=int, default=5, help="evaluate steps 1, 1 + stride, ...")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    weights, means, covariances = load_gmm(args.gmm)
    rng = np.random.default_rng(args.seed)
    factors = np.linalg.cholesky(covariances)

    beta = np.linspace(1.0 / (1.0 + 1e4), PAPER_BETA_T.get(args.T, 0.035), args.T)
    abar = np.cumprod(1.0 - beta)
    losses, variances = [], []
    print("| t | SNR_t (dB) | v loss of E[x0 | x_t] |")
    print("|---:|---:|---:|")
    for t in range(1, args.T + 1, args.stride):
        a2 = abar[t - 1]
        k = rng.choice(len(weights), size=args.samples, p=weights)
        x0 = means[k] + np.einsum("mij,mj->mi", factors[k], rng.standard_normal(means[k].shape))
        x_t = np.sqrt(a2) * x0 + np.sqrt(1 - a2) * rng.standard_normal(x0.shape)
        error = posterior_mean(x_t, a2, weights, means, covariances) - x0
        per_sample = (error ** 2).mean(axis=1) / (1 - a2)
        losses.append(per_sample.mean())
        variances.append(per_sample.var(ddof=1) / args.samples)
        print(f"| {t} | {10 * np.log10(a2 / (1 - a2)):.1f} | {losses[-1]:.4f} |")
    standard_error = np.sqrt(np.sum(variances)) / len(losses)
    print(f"v loss averaged over the steps: {np.mean(losses):.4f} "
          f"(Monte Carlo standard error {standard_error:.4f})")


if __name__ == "__main__":
    main()
