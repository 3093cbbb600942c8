#include "diffusion/inverse/ddrm.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffusion/sampler.hpp"

namespace dpm::diffusion::inverse {
namespace {

// The problem in the operator's spectral coordinates: s [k] and U^T y [B, m].
struct Spectrum {
  std::vector<double> s;
  std::vector<double> ut_y;
  int64_t k = 0, m = 0, n = 0, rows = 0;
  double sigma_y = 0.0;
};

// sigma_t = sqrt(1 - abar_t) / sqrt(abar_t), the noise level of x_t / sqrt(abar_t); 0 at t = 0.
double noise_level(const Schedule& schedule, int64_t t) {
  return std::sqrt(1.0 - schedule.abar(t)) / std::sqrt(schedule.abar(t));
}

// The spectral coordinates of x_T' / sqrt(abar_T') at the top step, noise level sigma_top.
std::vector<double> initial_state(const Spectrum& spectrum, double sigma_top, Rng& rng) {
  std::vector<double> x = standard_normals(rng, spectrum.rows * spectrum.n);
  for (int64_t b = 0; b < spectrum.rows; ++b)
    for (int64_t i = 0; i < spectrum.n; ++i) {
      double& value = x[static_cast<size_t>(b * spectrum.n + i)];
      const double s_i = i < spectrum.k ? spectrum.s[static_cast<size_t>(i)] : 0.0;
      if (s_i * sigma_top > spectrum.sigma_y) {
        const double ybar = spectrum.ut_y[static_cast<size_t>(b * spectrum.m + i)] / s_i;
        const double inverse = spectrum.sigma_y / s_i;
        value = ybar + std::sqrt(sigma_top * sigma_top - inverse * inverse) * value;
      } else {
        value *= sigma_top;
      }
    }
  return x;
}

// The spectral coordinates of x_s / sqrt(abar_s) from the spectral x0_hat and eps predicted at t
// and the step's draws z (all [B, n]).
std::vector<double> next_state(const DdrmSettings& settings, const Spectrum& spectrum,
                               double sigma_s, const std::vector<double>& x0_hat,
                               const std::vector<double>& eps, const std::vector<double>& z) {
  const double sigma_y = spectrum.sigma_y;
  const double deterministic = std::sqrt(1.0 - settings.eta * settings.eta) * sigma_s;
  const double stochastic = settings.eta * sigma_s;
  std::vector<double> next(x0_hat.size());
  for (int64_t b = 0; b < spectrum.rows; ++b)
    for (int64_t i = 0; i < spectrum.n; ++i) {
      const size_t at = static_cast<size_t>(b * spectrum.n + i);
      const double s_i = i < spectrum.k ? spectrum.s[static_cast<size_t>(i)] : 0.0;
      const double ut_y =
          i < spectrum.k ? spectrum.ut_y[static_cast<size_t>(b * spectrum.m + i)] : 0.0;
      if (i < spectrum.k && s_i * sigma_s > sigma_y) {  // noisier than y
        const double inverse = settings.eta_b * sigma_y / s_i;
        next[at] = settings.eta_b * ut_y / s_i + (1.0 - settings.eta_b) * x0_hat[at] +
                   std::sqrt(sigma_s * sigma_s - inverse * inverse) * z[at];
      } else if (i < spectrum.k && s_i * sigma_s < sigma_y) {  // less noisy than y
        next[at] =
            x0_hat[at] + deterministic * (ut_y - s_i * x0_hat[at]) / sigma_y + stochastic * z[at];
      } else {  // null space
        next[at] = x0_hat[at] + deterministic * eps[at] + stochastic * z[at];
      }
    }
  return next;
}

// x = sqrt(abar_t) V spectral.
std::vector<double> from_spectral(MeasurementOperator& op, const std::vector<double>& spectral,
                                  const Schedule& schedule, int64_t t) {
  std::vector<double> x = op.apply_v(spectral);
  const double scale = std::sqrt(schedule.abar(t));
  for (double& v : x) v *= scale;
  return x;
}

}  // namespace

void DdrmSettings::validate(const char* caller) const {
  require_setting(eta >= 0.0 && eta <= 1.0, caller, "eta", "in [0, 1]", eta);
  require_setting(eta_b >= 0.0 && eta_b <= 1.0, caller, "eta_b", "in [0, 1]", eta_b);
}

Restored ddrm(const DdrmSettings& settings, MeasurementOperator& op, const Problem& problem,
              const Prior& prior, Rng& rng) {
  settings.validate("ddrm");
  const int64_t rows = problem.validate(op, "ddrm", /*require_positive_sigma=*/false);
  if (!op.has_svd())
    throw std::invalid_argument("ddrm: operator '" + op.name() +
                                "' has no SVD; DDRM needs one (MeasurementOperator::has_svd)");
  const Schedule& schedule = prior.schedule;
  const std::vector<int64_t> grid = settings.grid.steps(schedule, "ddrm");

  ScopedBatch batch(op, rows);
  Spectrum spectrum{op.singular_values(), op.apply_ut(problem.y)};
  spectrum.k = static_cast<int64_t>(spectrum.s.size());
  spectrum.m = op.output_dim();
  spectrum.n = op.input_dim();
  spectrum.rows = rows;
  spectrum.sigma_y = problem.sigma_y;

  std::vector<double> x_t = from_spectral(
      op, initial_state(spectrum, noise_level(schedule, grid.back()), rng), schedule, grid.back());
  for (const StepPair step : descending_pairs(grid)) {
    const std::vector<double> eps =
        prior.predictor.predict_eps(problem.batch(x_t, rows), step.t).values;
    const std::vector<double> x0_hat = tweedie_x0(schedule, step.t, x_t, eps);
    const std::vector<double> next =
        next_state(settings, spectrum, noise_level(schedule, step.s), op.apply_vt(x0_hat),
                   op.apply_vt(eps), standard_normals(rng, rows * spectrum.n));
    x_t = from_spectral(op, next, schedule, step.s);
  }
  return {problem.batch(std::move(x_t), rows), static_cast<int64_t>(grid.size()), 0};
}

}  // namespace dpm::diffusion::inverse
