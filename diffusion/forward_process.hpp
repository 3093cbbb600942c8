#pragma once
// The forward (noising) process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), and the
// random draws of training: steps uniform in 1..T and standard normal noise, from our Rng.
#include <cstdint>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

// x_t = sqrt(abar_{t_i}) x0_i + sqrt(1 - abar_{t_i}) eps_i for every sample i; x0 and eps of one
// shape [B, ...], steps of size B with values in 1..T.
Tensor q_sample(const Schedule& schedule, const Tensor& x0, const std::vector<int64_t>& steps,
                const Tensor& eps);

// n steps uniform in 1..T.
std::vector<int64_t> sample_steps(const Schedule& schedule, int64_t n, Rng& rng);
// n steps uniform in first..last (1 <= first <= last).
std::vector<int64_t> sample_steps(int64_t n, Rng& rng, int64_t first, int64_t last);

// One draw of the forward process for a batch: steps (drawn first), noise, and x_t.
struct ForwardSample {
  std::vector<int64_t> steps;
  Tensor eps;
  Tensor x_t;
};
ForwardSample sample_forward(const Schedule& schedule, const Tensor& x0, Rng& rng);

}  // namespace dpm::diffusion
