#include "diffusion/inverse/dps.hpp"

#include <cmath>

#include "diffusion/inverse/guidance.hpp"

namespace dpm::diffusion::inverse {
namespace {

// r = y - A x0_hat per row, then grad_{x_t} ||r||^2 = J_x0hat^T (-2 A^T r): one backward pass.
MeasurementGradient gradient_at(MeasurementOperator& op, const std::vector<double>& y,
                                DenoisedPoint& point) {
  const std::vector<double> residual = measurement_residual(op, y, point.x0_hat());
  const int64_t rows = op.batch(), m = op.output_dim();
  std::vector<double> norms(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < m; ++j) norms[r] += residual[r * m + j] * residual[r * m + j];
    norms[r] = std::sqrt(norms[r]);
  }
  std::vector<double> seed = op.adjoint(residual);
  for (double& v : seed) v *= -2.0;
  return {point.x0_hat_adjoint(seed), std::move(norms), point.x0_hat(), point.eps()};
}

}  // namespace

void DpsSettings::validate(const char* caller) const {
  require_finite_non_negative(zeta, "zeta", caller);
  require_eta_in_unit_interval(eta, caller);
}

Restored dps(const DpsSettings& settings, MeasurementOperator& op, const Problem& problem,
             const Prior& prior, Rng& rng) {
  settings.validate("dps");
  const Guidance guidance = [&](StepPair, DenoisedPoint& point) {
    MeasurementGradient g = gradient_at(op, problem.y, point);
    const int64_t n = op.input_dim();
    for (size_t r = 0; r < g.residual_norm.size(); ++r) {
      // A row that already fits y exactly has no direction to follow.
      const double coefficient =
          g.residual_norm[r] > 0.0 ? -settings.zeta / g.residual_norm[r] : 0.0;
      for (int64_t j = 0; j < n; ++j) g.gradient[r * n + j] *= coefficient;
    }
    return g.gradient;
  };
  return run_guided_ddim({settings.grid, settings.eta, /*require_positive_sigma=*/false, "dps"}, op,
                         problem, prior, rng, guidance);
}

MeasurementGradient measurement_gradient(MeasurementOperator& op, const Problem& problem,
                                         const Prior& prior, int64_t t, const DoubleBatch& x_t) {
  const char* caller = "measurement_gradient";
  const int64_t rows = validate_point(op, problem, prior, t, x_t, false, caller);
  ScopedBatch scoped(op, rows);
  DenoisedPoint point(prior, t, x_t, caller);
  return gradient_at(op, problem.y, point);
}

}  // namespace dpm::diffusion::inverse
