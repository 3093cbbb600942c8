#pragma once
// RED-Diff (Mardani, Song, Kautz, Vahdat, ICLR 2024; docs/inverse.md, RED-Diff): fit
// q(x0 | y) = N(mu, sigma_x0^2 I) by Adam on mu, one stochastic step per grid timestep, on
//   loss(mu) = obs_weight * data(mu) + w_t * sg(eps(x_t, t) - eps)^T mu,
//   x_t = sqrt(abar_t) (mu + sigma_x0 z) + sqrt(1 - abar_t) eps,
//   w_t = lambda * weighting(sqrt(1 - abar_t) / sqrt(abar_t)),
// with mu started at A^+ y (or A^T y). The regulariser needs no Jacobian of the network: its
// gradient in mu is w_t (eps(x_t, t) - eps). Each row of the batch is its own problem: its gradient
// is that of its own loss (the authors' code averages the loss over the batch too, a factor 1 / B
// that Adam all but cancels) and Adam acts element-wise, so a row's result does not depend on the
// others.
//
// Noise: every step draws z = noise_x0 [B, n] and then eps = noise_xt [B, n] from the Rng, both
// row-major, as the authors' code does (z also when sigma_x0 = 0); StepOrder::random draws its
// permutation before any noise. The result is mu, not the last x0_pred = mu + sigma_x0 z: the
// authors' code returns both, and mu is their restoration (they equal each other at their
// default sigma_x0 = 0).
#include <cstdint>
#include <vector>

#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

// weighting(r) of r = sqrt(1 - abar_t) / sqrt(abar_t) = 1 / sqrt(SNR_t), as the authors' code
// names them: linear r (the default), sqrt r^(1/2), square r^2, log log(1 + r),
// trunc_linear min(r, 1), constant 1.
enum class RedDiffWeighting { linear, sqrt, square, log, trunc_linear, constant };
double red_diff_weight(RedDiffWeighting weighting, double inverse_sqrt_snr);

// The order the grid's timesteps are visited in: from the top down (the authors' default), from
// the bottom up, or a random permutation of the grid drawn from the solver's Rng (the paper's
// ablation).
enum class StepOrder { descending, ascending, random };

// The data term. authors_mean: ||y - A mu||^2 / (2 m) and the regulariser divided by n, as the
// authors' code takes both as means over their elements (sigma_y does not enter; their lambda
// and lr are tuned for this). likelihood: ||y - A mu||^2 / (2 sigma_y^2) with the regulariser
// summed, the variational objective as the paper writes it (needs sigma_y > 0).
enum class RedDiffDataTerm { authors_mean, likelihood };

// Where mu starts: A^+ y (the authors' code), or A^T y, which stays bounded where A has tiny
// singular values and A^+ amplifies the measurement noise by their inverse (a blur).
enum class RedDiffStart { pseudo_inverse, adjoint };

struct RedDiffSettings {
  StepGrid grid;  // 50 steps over 1..T, as the authors' default
  RedDiffStart start = RedDiffStart::pseudo_inverse;
  StepOrder order = StepOrder::descending;
  RedDiffWeighting weighting = RedDiffWeighting::linear;
  RedDiffDataTerm data_term = RedDiffDataTerm::authors_mean;
  double lambda = 0.25;     // grad_term_weight
  double obs_weight = 1.0;  // v_t
  double lr = 0.1;          // Adam, betas (0.9, 0.99), eps 1e-8, as the authors' code
  double sigma_x0 = 0.0;
  // Evaluate eps and -eps at every step (one batched call of 2B rows) and average their
  // gradients: a variance reduction that, for a Gaussian prior with the exact eps*, makes the
  // regulariser's gradient exact (it is affine in eps).
  bool antithetic = false;

  void validate(const char* caller) const;  // std::invalid_argument naming the field
};

// Runs settings.grid in settings.order. NFE = the number of grid steps.
Restored red_diff(const RedDiffSettings& settings, MeasurementOperator& op, const Problem& problem,
                  const Prior& prior, Rng& rng);

// The same on an explicit sequence of timesteps (each in 1..T, repeats allowed; settings.grid and
// settings.order are not used): tests run many Adam steps at one t to reach the fixed point.
Restored red_diff_on_steps(const RedDiffSettings& settings, const std::vector<int64_t>& steps,
                           MeasurementOperator& op, const Problem& problem, const Prior& prior,
                           Rng& rng);

// One step's gradient in mu [B, n] at step t from mu and the step's draws noise_x0 and noise_xt
// (each [B, n]): with x0_pred = mu + sigma_x0 noise_x0 and r_t = eps(x_t, t) - noise_xt,
//   authors_mean: obs_weight A^T (A x0_pred - y) / m + w_t r_t / n,
//   likelihood:   obs_weight A^T (A x0_pred - y) / sigma_y^2 + w_t r_t,
// r_t averaged with its antithetic twin eps(x_t', t) + noise_xt (x_t' built with -noise_xt) when
// settings.antithetic. One predictor evaluation (of 2B rows when antithetic). Public so that tests
// can check it against closed forms.
std::vector<double> red_diff_gradient(const RedDiffSettings& settings, MeasurementOperator& op,
                                      const Problem& problem, const Prior& prior, int64_t t,
                                      const std::vector<double>& mu,
                                      const std::vector<double>& noise_x0,
                                      const std::vector<double>& noise_xt);

}  // namespace dpm::diffusion::inverse
