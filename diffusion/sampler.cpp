#include "diffusion/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dpm::diffusion {
namespace {

void require_same_size(const std::vector<double>& x, const std::vector<double>& eps,
                       const char* caller) {
  if (x.size() != eps.size())
    throw std::invalid_argument(std::string(caller) + ": x has " + std::to_string(x.size()) +
                                " values but eps has " + std::to_string(eps.size()));
}

// x += scale * z with z standard normal, drawn in row-major order over the whole batch that x is
// `part` of (x holds row_size values per row).
void add_noise(std::vector<double>& x, double scale, Rng& rng, const BatchPart& part,
               int64_t row_size) {
  constexpr uint64_t kDrawsPerNormal = 2;
  const auto values_before = static_cast<uint64_t>(part.first_row * row_size);
  rng.discard(kDrawsPerNormal * values_before);
  for (double& v : x) v += scale * rng.normal();
  if (part.total_rows > 0)
    rng.discard(kDrawsPerNormal *
                (static_cast<uint64_t>(part.total_rows * row_size) - values_before - x.size()));
}

}  // namespace

std::vector<double> reverse_mean(const Schedule& schedule, int64_t t, const std::vector<double>& x,
                                 const std::vector<double>& eps) {
  require_same_size(x, eps, "reverse_mean");
  const double eps_coef = schedule.beta(t) / std::sqrt(1.0 - schedule.abar(t));
  const double scale = 1.0 / std::sqrt(schedule.alpha(t));
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - eps_coef * eps[i]) * scale;
  return out;
}

std::vector<double> tweedie_x0(const Schedule& schedule, int64_t t, const std::vector<double>& x,
                               const std::vector<double>& eps) {
  require_same_size(x, eps, "tweedie_x0");
  const double noise = std::sqrt(1.0 - schedule.abar(t)), scale = 1.0 / std::sqrt(schedule.abar(t));
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - noise * eps[i]) * scale;
  return out;
}

DoubleBatch run_reverse(const ReverseProcess& process, NoisePredictor& predictor,
                        const Schedule& schedule, DoubleBatch x, int64_t t_start, Rng& rng,
                        const StepCallback& on_step) {
  x.validate("run_reverse");
  if (t_start < 0 || t_start > schedule.T())
    throw std::invalid_argument("run_reverse: t_start must be in 0.." +
                                std::to_string(schedule.T()) + ", got " + std::to_string(t_start));
  if (!(process.eta >= 0.0) || !std::isfinite(process.eta))
    throw std::invalid_argument("run_reverse: eta must be finite and >= 0, got " +
                                std::to_string(process.eta));
  const BatchPart& part = process.part;
  const bool whole = part.total_rows == 0 && part.first_row == 0;
  if (!whole && (part.first_row < 0 || part.first_row + x.batch() > part.total_rows))
    throw std::invalid_argument("run_reverse: rows " + std::to_string(part.first_row) + ".." +
                                std::to_string(part.first_row + x.batch()) +
                                " are not part of a batch of " + std::to_string(part.total_rows));
  const int64_t row_size = x.row_size();
  for (int64_t t = t_start; t >= 1; --t) {
    const std::vector<double> eps = predictor.predict_eps(x, t).values;
    switch (process.kind) {
      case ReverseKind::mean_forwarding:
        x.values = reverse_mean(schedule, t, x.values, eps);
        break;
      case ReverseKind::ancestral:
        x.values = reverse_mean(schedule, t, x.values, eps);
        if (t > 1)
          add_noise(
              x.values,
              std::sqrt(process.variance == ReverseVariance::beta ? schedule.beta(t)
                                                                  : schedule.posterior_variance(t)),
              rng, part, row_size);
        break;
      case ReverseKind::ddim: {
        const double sigma = process.eta * std::sqrt(schedule.posterior_variance(t));
        const double signal = std::sqrt(schedule.abar(t - 1));
        const double direction =
            std::sqrt(std::max(0.0, 1.0 - schedule.abar(t - 1) - sigma * sigma));
        std::vector<double> x0 = tweedie_x0(schedule, t, x.values, eps);
        for (size_t i = 0; i < x0.size(); ++i) x.values[i] = signal * x0[i] + direction * eps[i];
        if (sigma > 0.0) add_noise(x.values, sigma, rng, part, row_size);
        break;
      }
    }
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dpm::diffusion
