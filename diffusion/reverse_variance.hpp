#pragma once
// The fixed variance sigma_t^2 of the reverse process p(x_{t-1} | x_t): one type for the
// objectives (the bound's terms) and the samplers, so a model is sampled with the variance it was
// trained for.

namespace dpm::diffusion {

enum class ReverseVariance {
  beta,        // sigma_t^2 = beta_t ("fixed large")
  beta_tilde,  // sigma_t^2 = beta~_t, the posterior variance ("fixed small")
};

}  // namespace dpm::diffusion
