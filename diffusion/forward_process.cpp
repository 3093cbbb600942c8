#include "diffusion/forward_process.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/per_sample.hpp"

namespace dpm::diffusion {

Tensor q_sample(const Schedule& schedule, const Tensor& x0, const std::vector<int64_t>& steps,
                const Tensor& eps) {
  require_per_sample(x0, static_cast<int64_t>(steps.size()), "q_sample", "x0");
  std::vector<double> signal = abar_at(schedule, steps, "q_sample"), noise(signal.size());
  for (size_t i = 0; i < signal.size(); ++i) {
    noise[i] = std::sqrt(1 - signal[i]);
    signal[i] = std::sqrt(signal[i]);
  }
  return combine_per_sample(signal, x0, noise, eps, "q_sample");
}

std::vector<int64_t> sample_steps(const Schedule& schedule, int64_t n, Rng& rng) {
  return sample_steps(n, rng, 1, schedule.T());
}

std::vector<int64_t> sample_steps(int64_t n, Rng& rng, int64_t first, int64_t last) {
  if (n < 0) throw std::invalid_argument("sample_steps: n must be >= 0, got " + std::to_string(n));
  if (first < 1 || last < first)
    throw std::invalid_argument("sample_steps: need 1 <= first <= last, got " +
                                std::to_string(first) + ".." + std::to_string(last));
  std::vector<int64_t> steps(static_cast<size_t>(n));
  for (auto& t : steps) t = rng.integer(first, last);
  return steps;
}

ForwardSample sample_forward(const Schedule& schedule, const Tensor& x0, Rng& rng) {
  const int64_t n = batch_size_of(x0, "sample_forward", "x0");
  ForwardSample s;
  s.steps = sample_steps(schedule, n, rng);
  s.eps = randn(x0.shape(), rng);
  s.x_t = q_sample(schedule, x0, s.steps, s.eps);
  return s;
}

}  // namespace dpm::diffusion
