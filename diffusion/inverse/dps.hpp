#pragma once
// Diffusion posterior sampling (Chung, Kim, Mccann, Klasky, Ye, ICLR 2023; docs/inverse.md, DPS),
// as the RED-Diff authors' baseline runs it: from x_T = sqrt(abar_T) A^+ y + sqrt(1 - abar_T) z at
// the grid's top step, each grid step t -> s is the generalised DDIM step (ddim_coefficients)
// minus the measurement gradient
//   zeta / ||y - A x0_hat(x_t)|| * grad_{x_t} ||y - A x0_hat(x_t)||^2,
//   x0_hat(x_t) = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t),
// the gradient taken through the predictor by J_eps^T (the network's tape, or exactly for eps*);
// a row with ||y - A x0_hat|| = 0 gets no guidance at that step. Each step costs one evaluation
// and one backward pass; the noise is drawn as guidance.hpp says (x_T's, then one draw per step
// with c1 > 0). The result is x_0 of the last step (a posterior sample, not the posterior mean).
#include <vector>

#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

struct DpsSettings {
  StepGrid grid{0, 0, 0};  // num_steps 0: every step 1..T (the DPS paper's 1000 steps at T = 1000)
  double zeta = 1.0;       // step size zeta' (the DPS paper: 1.0 for inpainting and SR on FFHQ)
  double eta = 1.0;        // 1: ancestral steps, as the DPS paper; the RED-Diff repository's 0

  void validate(const char* caller) const;  // std::invalid_argument naming the field
};

Restored dps(const DpsSettings& settings, MeasurementOperator& op, const Problem& problem,
             const Prior& prior, Rng& rng);

// grad_{x_t} ||y - A x0_hat(x_t)||^2 for every row of x_t [B, n] at step t, and the residual norms
// ||y - A x0_hat|| [B]; one predictor evaluation and one J_eps^T product. Public so that the
// gradient through the network can be checked against finite differences.
struct MeasurementGradient {
  std::vector<double> gradient;       // [B, n]
  std::vector<double> residual_norm;  // [B]
  std::vector<double> x0_hat;         // [B, n]
  std::vector<double> eps;            // [B, n]
};
MeasurementGradient measurement_gradient(MeasurementOperator& op, const Problem& problem,
                                         const Prior& prior, int64_t t, const DoubleBatch& x_t);

}  // namespace dpm::diffusion::inverse
