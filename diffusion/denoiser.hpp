#pragma once
// The paper's DPM denoiser and the other DM-based estimators of x from y = x + n,
// n ~ N(0, sigma^2 I), SNR = 1 / sigma^2 on unit-power data (docs/protocol.md, The denoiser), all
// built from the same pieces and runnable with any NoisePredictor (a trained network or the exact
// oracle eps*):
//   t_hat = the step whose SNR_t is nearest to the ASSUMED SNR (on the linear scale, the
//           authors' convention, or in dB); the assumed SNR may differ from the true one;
//   x = sqrt(snr / (1 + snr)) y, taken as the state at the start step t_s; then
//   mean_forwarding: the reverse mean mu_theta from t_s down to 1, no noise (the paper's);
//   tweedie:         one step, x_hat = (x - sqrt(1 - abar_ts) eps(x, t_s)) / sqrt(abar_ts);
//   posterior_mean:  the average of M ancestral runs from t_s (Monte-Carlo E[x_0 | x]);
//   ddim:            DDIM eta = 0 from t_s (a deterministic path to a prior sample, not an MSE
//                    estimator: shown for contrast).
//
// Start step. Default t_s = t_hat: x then has exactly the distribution of x_{t_hat} when the
// assumed SNR is the true one and lies on the grid, so with eps* one-step Tweedie is the CME
// (and so is mean forwarding for a Gaussian prior). The authors' code starts one step lower,
// t_s = t_hat - 1 (t_hat - 1 network evaluations: 278 at -20 dB, 107 at 0 dB, 39 at 10 dB for
// T = 300); Estimator::authors_offset selects that convention.
#include <cstdint>
#include <string>

#include "autograd/rng.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/sampler.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

enum class EstimatorKind { mean_forwarding, tweedie, posterior_mean, ddim };

struct Estimator {
  EstimatorKind kind = EstimatorKind::mean_forwarding;
  bool authors_offset = false;  // start at t_hat - 1 (the authors' code) instead of t_hat
  bool match_in_db = false;     // match the SNR in dB instead of on the linear scale
  int64_t samples = 1;          // posterior_mean: the number M of ancestral runs averaged
  ReverseVariance variance = ReverseVariance::beta_tilde;  // posterior_mean: sigma_t^2

  // "mean-forwarding", "tweedie", "ddim" or "posterior-mean-M<M>", then the options that differ
  // from the defaults: "+authors-offset", "+db", "+beta" (posterior_mean's variance).
  std::string name() const;
  // The inverse of name(); throws std::invalid_argument listing the valid forms.
  static Estimator parse(const std::string& name);
};

struct Denoised {
  DoubleBatch x_hat;
  int64_t matched_step = 0;  // t_hat
  int64_t start_step = 0;    // t_hat, or t_hat - 1 with authors_offset
  int64_t evaluations = 0;   // predictor evaluations used (batched calls)
};

// Estimates x from y [B, ...] (every sample at the same assumed SNR, a linear ratio > 0).
// Rng: the ancestral runs' noise (posterior_mean only). on_step is passed to the reverse runs
// (every run, for posterior_mean), so a caller can record the error after each reverse step.
// part: the rows of a larger batch that y holds (the noise drawn is then the whole batch's).
Denoised denoise(const Estimator& estimator, const DoubleBatch& y, double snr_assumed,
                 NoisePredictor& predictor, const Schedule& schedule, Rng& rng,
                 const StepCallback& on_step = {}, const BatchPart& part = {});

}  // namespace dpm::diffusion
