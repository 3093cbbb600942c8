#pragma once
// Lipschitz bounds of the DPM denoiser's maps (docs/protocol.md, Lipschitz facts; derived here,
// the paper's own statement could not be retrieved: docs/lipschitz.md gives the derivations).
// Two kinds:
//
// Hyperparameter-only facts about the EXACT stepwise CME f_t(x) = E[x_{t-1} | x_t = x], whose
// Jacobian is J_t = (I + beta_t Hess log p_t) / sqrt(alpha_t) (symmetric):
//   every prior:        J_t >= c_t I, c_t = sqrt(alpha_t)(1 - abar_{t-1}) / (1 - abar_t), since
//                       Hess log p_t = -I / (1 - abar_t) + abar_t Cov[x_0 | x_t] / (1 - abar_t)^2;
//                       so ||J_t(x)|| >= c_t at every x (c_1 = 0).
//   log-concave prior:  Hess log p_t <= 0, so ||J_t(x)|| <= 1 / sqrt(alpha_t).
//   the denoiser D(y) = f_1 o ... o f_ts(s y) (s = sqrt(snr / (1 + snr)), ts the start step):
//                       log-concave: Lip(D) <= s prod_{t <= ts} 1 / sqrt(alpha_t) = s /
//                       sqrt(abar_ts).
//
// Certified bounds on a NETWORK, from its layer norms (AutoLip over its graph at each t, with
// eval-mode BatchNorm and the FiLM factors at that t; nn/lipschitz/autolip.hpp), carried to the
// noise prediction, the reverse mean and the whole denoiser:
//   Lip(eps_theta(., t)) <= |c_pred| L_out + |c_xt|     (eps = c_pred out + c_xt x for an x0- or
//                                                        v-predicting network; L_eps = L_out for
//                                                        eps)
//   Lip(mu_theta(., t))  <= (1 + beta_t / sqrt(1 - abar_t) Lip(eps_theta(., t))) / sqrt(alpha_t)
//   Lip(D)               <= s prod_{t <= ts} Lip(mu_theta(., t))
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/shape.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/lipschitz/operator_norm.hpp"

namespace dpm::diffusion {

// c_t: a lower bound on ||J_t(x)|| at every x for every prior (t in 1..T).
double stepwise_cme_lower_bound(const Schedule& schedule, int64_t t);
// 1 / sqrt(alpha_t): an upper bound on ||J_t(x)|| for log-concave priors.
double stepwise_cme_log_concave_bound(const Schedule& schedule, int64_t t);
// s / sqrt(abar_ts): Lip(D) for log-concave priors, s the input scaling, ts the start step.
double denoiser_log_concave_bound(const Schedule& schedule, int64_t start_step, double scale);

// The network-form relation: a bound on Lip(mu(., t)) from one on Lip(eps(., t)).
double mean_lipschitz_bound(const Schedule& schedule, int64_t t, double eps_lipschitz);

struct CertifiedBounds {
  bool available = false;
  std::string note;  // what the bound covers, or why there is none
  // Index t = 1..T (index 0 unused, 0): bounds on the Lipschitz constant in x at step t.
  std::vector<double> output;  // of the network's raw output
  std::vector<double> eps;     // of eps_theta(., t)
  std::vector<double> mean;    // of mu_theta(., t)
  // The layer norms the bound rests on (power iteration per layer, nn/lipschitz/spectral_scan):
  int64_t layers = 0;
  int64_t layers_converged = 0;
  double worst_remaining_error = 0;  // the largest extrapolated relative error among them

  // log10 of s prod_{t <= start_step} mean[t]: a bound on Lip(D) (the product can overflow a
  // double, hence the logarithm).
  double log10_denoiser(int64_t start_step, double scale) const;
};

// Measures every layer norm of the predictor's network (power iteration run until the
// extrapolated relative error is at most layer_tolerance, or max_steps) at the input size of
// one sample of sample_shape, and the AutoLip bound at every t = 1..T. Does not change the model
// (its convs record their input size).
CertifiedBounds certify_network(NetworkPredictor& network, const Shape& sample_shape,
                                double layer_tolerance = 1e-6, int max_steps = 2000);

}  // namespace dpm::diffusion
