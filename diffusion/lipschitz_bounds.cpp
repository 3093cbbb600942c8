#include "diffusion/lipschitz_bounds.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "nn/lipschitz/spectral_scan.hpp"

namespace dpm::diffusion {

double stepwise_cme_lower_bound(const Schedule& schedule, int64_t t) {
  // The posterior mean's coefficient of x_t (docs/protocol.md, Schedules): the same quantity.
  return schedule.posterior_coef_xt(t);
}

double stepwise_cme_log_concave_bound(const Schedule& schedule, int64_t t) {
  if (t < 1) throw std::invalid_argument("stepwise_cme_log_concave_bound: t must be >= 1");
  return 1.0 / std::sqrt(schedule.alpha(t));
}

double denoiser_log_concave_bound(const Schedule& schedule, int64_t start_step, double scale) {
  return scale / std::sqrt(schedule.abar(start_step));
}

double mean_lipschitz_bound(const Schedule& schedule, int64_t t, double eps_lipschitz) {
  if (t < 1) throw std::invalid_argument("mean_lipschitz_bound: t must be >= 1");
  return (1.0 + schedule.beta(t) / std::sqrt(1.0 - schedule.abar(t)) * eps_lipschitz) /
         std::sqrt(schedule.alpha(t));
}

double CertifiedBounds::log10_denoiser(int64_t start_step, double scale) const {
  if (!available) return std::nan("");
  if (start_step < 0 || start_step >= static_cast<int64_t>(mean.size()))
    throw std::invalid_argument("CertifiedBounds::log10_denoiser: start step " +
                                std::to_string(start_step) + " outside 0.." +
                                std::to_string(mean.size() - 1));
  double log10_bound = std::log10(scale);
  for (int64_t t = 1; t <= start_step; ++t) log10_bound += std::log10(mean[t]);
  return log10_bound;
}

CertifiedBounds certify_network(NetworkPredictor& network, const Shape& sample_shape,
                                double layer_tolerance, int max_steps) {
  const Schedule& schedule = network.schedule();
  nn::NoiseModel& model = network.model();
  lipschitz::record_input_shapes(model, sample_shape);
  lipschitz::ScanOptions options;
  options.cold = {.steps = 1, .tolerance = layer_tolerance, .max_steps = max_steps};
  options.reshaped_kernel_proxy = false;
  options.time_grid = lipschitz::uniform_time_grid(schedule.T(), static_cast<int>(schedule.T()));
  lipschitz::SpectralState state;
  const lipschitz::ScanResult scan = lipschitz::spectral_scan(model, state, options);

  CertifiedBounds bounds;
  bounds.note = scan.bound_note;
  bounds.layers = static_cast<int64_t>(scan.layers.size());
  for (const lipschitz::LayerSigma& layer : scan.layers) {
    bounds.layers_converged += layer.power.converged ? 1 : 0;
    bounds.worst_remaining_error =
        std::max(bounds.worst_remaining_error, layer.power.remaining_error);
  }
  if (scan.bound_by_t.size() != static_cast<size_t>(schedule.T())) return bounds;
  bounds.available = true;
  const auto size = static_cast<size_t>(schedule.T() + 1);
  bounds.output.assign(size, 0.0);
  bounds.eps.assign(size, 0.0);
  bounds.mean.assign(size, 0.0);
  for (int64_t t = 1; t <= schedule.T(); ++t) {
    // The grid is every step: entry t - 1 is the network's index for step t.
    bounds.output[t] = scan.bound_by_t[static_cast<size_t>(t - 1)];
    const ConversionCoefficients c =
        conversion_coefficients(network.options().target, PredictionTarget::eps, schedule.abar(t));
    bounds.eps[t] = std::abs(c.prediction) * bounds.output[t] + std::abs(c.x_t);
    bounds.mean[t] = mean_lipschitz_bound(schedule, t, bounds.eps[t]);
  }
  return bounds;
}

}  // namespace dpm::diffusion
