#include "diffusion/inverse/pigdm.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/inverse/guidance.hpp"

namespace dpm::diffusion::inverse {
namespace {

// g = A^T U diag(r_t^2 / (r_t^2 s_i^2 + sigma_y^2)) U^T residual, the spectral form of
// r_t^2 A^T (r_t^2 A A^T + sigma_y^2 I)^-1 residual. A^T maps U's columns of s = 0 (those beyond
// the k singular values, and zero ones) to zero, so their coefficients are set to zero rather
// than scaled by r_t^2 / sigma_y^2 and left for rounding to cancel.
std::vector<double> noisy_vector(MeasurementOperator& op, std::vector<double> residual,
                                 double r_squared, double sigma_y) {
  const std::vector<double> s = op.singular_values();
  const int64_t rows = op.batch(), m = op.output_dim(), k = static_cast<int64_t>(s.size());
  std::vector<double> spectral = op.apply_ut(residual);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < m; ++i) {
      const double s_i = i < k ? s[i] : 0.0;
      spectral[r * m + i] *=
          s_i == 0.0 ? 0.0 : r_squared / (r_squared * s_i * s_i + sigma_y * sigma_y);
    }
  return op.adjoint(op.apply_u(spectral));
}

// g (held fixed) and J_x0hat^T g at the point: one backward pass.
PigdmGuidanceTerm guidance_at(PigdmGuidance kind, MeasurementOperator& op, const Problem& problem,
                              double abar_t, DenoisedPoint& point) {
  std::vector<double> residual = measurement_residual(op, problem.y, point.x0_hat());
  std::vector<double> g =
      kind == PigdmGuidance::noiseless
          // A^+ y - A^+ A x0_hat of the authors' code, by the linearity of A^+.
          ? op.pseudo_inverse(residual)
          : noisy_vector(op, std::move(residual), 1.0 - abar_t, problem.sigma_y);
  std::vector<double> gradient = point.x0_hat_adjoint(g);
  return {std::move(g), std::move(gradient), point.x0_hat()};
}

void require_svd_for(PigdmGuidance kind, const MeasurementOperator& op, const char* caller) {
  if (kind == PigdmGuidance::noisy && !op.has_svd())
    throw std::invalid_argument(std::string(caller) +
                                ": noisy guidance needs the operator's SVD; operator '" +
                                op.name() + "' has none");
}

}  // namespace

void PigdmSettings::validate(const char* caller) const {
  require_finite_non_negative(weight, "weight", caller);
  require_eta_in_unit_interval(eta, caller);
}

Restored pigdm(const PigdmSettings& settings, MeasurementOperator& op, const Problem& problem,
               const Prior& prior, Rng& rng) {
  settings.validate("pigdm");
  require_svd_for(settings.guidance, op, "pigdm");
  const Schedule& schedule = prior.schedule;
  const Guidance guidance = [&](StepPair step, DenoisedPoint& point) {
    const double abar_t = schedule.abar(step.t);
    std::vector<double> term = guidance_at(settings.guidance, op, problem, abar_t, point).gradient;
    const double coefficient =
        settings.weight * std::sqrt(schedule.abar(step.s)) * std::sqrt(abar_t);
    for (double& v : term) v *= coefficient;
    return term;
  };
  const bool noisy = settings.guidance == PigdmGuidance::noisy;
  return run_guided_ddim({settings.grid, settings.eta, /*require_positive_sigma=*/noisy, "pigdm"},
                         op, problem, prior, rng, guidance);
}

PigdmGuidanceTerm pigdm_guidance(PigdmGuidance kind, MeasurementOperator& op,
                                 const Problem& problem, const Prior& prior, int64_t t,
                                 const DoubleBatch& x_t) {
  const char* caller = "pigdm_guidance";
  require_svd_for(kind, op, caller);
  const int64_t rows =
      validate_point(op, problem, prior, t, x_t, kind == PigdmGuidance::noisy, caller);
  ScopedBatch scoped(op, rows);
  DenoisedPoint point(prior, t, x_t, caller);
  return guidance_at(kind, op, problem, prior.schedule.abar(t), point);
}

}  // namespace dpm::diffusion::inverse
