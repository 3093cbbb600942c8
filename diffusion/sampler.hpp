#pragma once
// Reverse processes driven by any NoisePredictor (a trained network or the exact oracle eps*),
// run on a DoubleBatch state from a given step down to x_0:
// - mean forwarding: x <- mu_theta(x, t), no noise (the paper's denoiser loop; docs/protocol.md,
//   The denoiser);
// - ancestral (DDPM): x <- mu_theta(x, t) + sigma_t z, sigma_t^2 = beta_t or beta~_t, and no
//   noise at the last step t = 1 (Ho et al.'s convention: x_0 is the mean of p(x_0 | x_1));
// - DDIM with eta: x <- sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1} - s_t^2) eps + s_t z,
//   x0_hat = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t), s_t = eta sqrt(beta~_t) (eta = 0: a
//   deterministic path, eta = 1: the ancestral process with beta~_t).
// mu_theta(x, t) = (x - beta_t / sqrt(1 - abar_t) eps(x, t)) / sqrt(alpha_t). One predictor
// evaluation per step; noise comes from the caller's Rng, one standard normal per element per
// noisy step in row-major order (of the whole batch when x is a part of one: BatchPart), so a run
// repeats bitwise for a given Rng state.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/reverse_variance.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

enum class ReverseKind { mean_forwarding, ancestral, ddim };

// The rows of a larger batch that x holds: [first_row, first_row + x's rows) of total_rows (0:
// x is the whole batch). Each noisy step draws the whole batch's noise and adds this part's, so
// the rows of a batch split over ranks get the noise they would get together.
struct BatchPart {
  int64_t first_row = 0;
  int64_t total_rows = 0;
};

struct ReverseProcess {
  ReverseKind kind = ReverseKind::mean_forwarding;
  ReverseVariance variance = ReverseVariance::beta_tilde;  // ancestral only
  double eta = 0.0;                                        // ddim only, >= 0
  BatchPart part;
};

// Called after every step t -> t - 1 with t and the new state x_{t-1}; steps come in order
// t_start, t_start - 1, ..., 1.
using StepCallback = std::function<void(int64_t t, const DoubleBatch& x)>;

// Runs `process` from x = x_{t_start} (t_start in 0..T; 0 runs nothing) and returns x_0.
DoubleBatch run_reverse(const ReverseProcess& process, NoisePredictor& predictor,
                        const Schedule& schedule, DoubleBatch x, int64_t t_start, Rng& rng,
                        const StepCallback& on_step = {});

// The two update formulas, element-wise on equally long x and eps at step t (1..T):
// mu_theta(x, t) and Tweedie's x0_hat = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t).
std::vector<double> reverse_mean(const Schedule& schedule, int64_t t, const std::vector<double>& x,
                                 const std::vector<double>& eps);
std::vector<double> tweedie_x0(const Schedule& schedule, int64_t t, const std::vector<double>& x,
                               const std::vector<double>& eps);

}  // namespace dpm::diffusion
