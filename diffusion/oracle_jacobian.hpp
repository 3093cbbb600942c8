#pragma once
// Exact Jacobian norms of the GMM oracle's maps (docs/protocol.md, Lipschitz facts), in double:
// eps*(., t) and the stepwise CME f_t from the Hessian of log p_t, and the oracle denoiser D* from
// the product of the exact step Jacobians along its path. The Lipschitz audit compares the
// network's measured norms with these.
#include <cstdint>
#include <vector>

#include "diffusion/oracle.hpp"

namespace dpm::diffusion {

// ||J_eps*(x)|| = sqrt(1 - abar_t) ||Hess log p_t(x)|| and ||J_t(x)|| of the stepwise CME for
// every row of x [rows, N], exact (one symmetric eigen-solve of the Hessian per row).
struct ExactStepNorms {
  std::vector<double> eps, cme;
};
ExactStepNorms exact_step_norms(const GmmOracle& oracle, const std::vector<double>& x, int64_t t);

// ||J_D*(y)|| of the oracle's mean forwarding D*(y) = f_1 o ... o f_ts(s y) for every row of
// y [rows, N]: the product s J_1(x_1) ... J_ts(x_ts) of the exact step Jacobians along the path,
// then its largest singular value.
std::vector<double> exact_denoiser_norms(const GmmOracle& oracle, const std::vector<double>& y,
                                         int64_t start_step, double scale);

}  // namespace dpm::diffusion
