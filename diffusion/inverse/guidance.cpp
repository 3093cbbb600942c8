#include "diffusion/inverse/guidance.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/sampler.hpp"

namespace dpm::diffusion::inverse {

DenoisedPoint::DenoisedPoint(const Prior& prior, int64_t t, const DoubleBatch& x_t,
                             const char* caller)
    : abar_t_(prior.schedule.abar(t)) {
  if (!prior.eps_jacobian)
    throw std::invalid_argument(std::string(caller) +
                                ": the prior has no eps_jacobian; this solver backpropagates "
                                "through eps (use network_prior or oracle_prior)");
  eps_jacobian_ = prior.eps_jacobian(t, x_t);
  eps_ = eps_jacobian_->eps().values;
  x0_hat_ = tweedie_x0(prior.schedule, t, x_t.values, eps_);
}

std::vector<double> DenoisedPoint::x0_hat_adjoint(const std::vector<double>& u) {
  std::vector<double> out = eps_jacobian_->adjoint(u);
  ++backward_passes_;
  const double noise = std::sqrt(1.0 - abar_t_), scale = 1.0 / std::sqrt(abar_t_);
  for (size_t i = 0; i < out.size(); ++i) out[i] = (u[i] - noise * out[i]) * scale;
  return out;
}

std::vector<double> measurement_residual(MeasurementOperator& op, const std::vector<double>& y,
                                         const std::vector<double>& x0_hat) {
  std::vector<double> residual = op.apply(x0_hat);
  for (size_t i = 0; i < residual.size(); ++i) residual[i] = y[i] - residual[i];
  return residual;
}

int64_t validate_point(MeasurementOperator& op, const Problem& problem, const Prior& prior,
                       int64_t t, const DoubleBatch& x_t, bool require_positive_sigma,
                       const char* caller) {
  const int64_t rows = problem.validate(op, caller, require_positive_sigma);
  x_t.validate(caller);
  if (x_t.batch() != rows || x_t.row_size() != op.input_dim())
    throw std::invalid_argument(std::string(caller) + ": x_t must be " + std::to_string(rows) +
                                " rows (as y) of " + std::to_string(op.input_dim()) +
                                " values, got " + x_t.shape.str());
  if (t < 1 || t > prior.schedule.T())
    throw std::invalid_argument(std::string(caller) + ": t must lie in 1.." +
                                std::to_string(prior.schedule.T()) + ", got " + std::to_string(t));
  return rows;
}

DoubleBatch guided_start(MeasurementOperator& op, const Problem& problem, const Schedule& schedule,
                         int64_t top_step, Rng& rng) {
  std::vector<int64_t> dims = problem.sample_shape.vec();
  dims.insert(dims.begin(), op.batch());
  DoubleBatch x{Shape(dims), op.pseudo_inverse(problem.y)};
  const double signal = std::sqrt(schedule.abar(top_step));
  const double noise = std::sqrt(1.0 - schedule.abar(top_step));
  for (double& v : x.values) v = signal * v + noise * rng.normal();
  return x;
}

Restored run_guided_ddim(const GuidedDdim& run, MeasurementOperator& op, const Problem& problem,
                         const Prior& prior, Rng& rng, const Guidance& guidance) {
  const int64_t rows = problem.validate(op, run.caller, run.require_positive_sigma);
  const std::vector<int64_t> steps = run.grid.steps(prior.schedule, run.caller);
  ScopedBatch scoped(op, rows);
  Restored out{guided_start(op, problem, prior.schedule, steps.back(), rng)};
  std::vector<double>& x = out.x_hat.values;
  for (const StepPair step : descending_pairs(steps)) {
    DenoisedPoint point(prior, step.t, out.x_hat, run.caller);
    ++out.evaluations;
    const std::vector<double> term = guidance(step, point);
    out.backward_passes += point.backward_passes();
    // The order of run_reverse's DDIM update, so that zero guidance repeats it bitwise.
    const DdimCoefficients c = ddim_coefficients(prior.schedule, step, run.eta);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = c.sqrt_abar_s * point.x0_hat()[i] + c.c2 * point.eps()[i];
    if (c.c1 > 0.0)
      for (double& v : x) v += c.c1 * rng.normal();
    for (size_t i = 0; i < x.size(); ++i) x[i] += term[i];
  }
  return out;
}

void require_eta_in_unit_interval(double eta, const char* caller) {
  if (!(eta >= 0.0 && eta <= 1.0))
    throw std::invalid_argument(std::string(caller) + ": eta must lie in [0, 1], got " +
                                std::to_string(eta));
}

void require_finite_non_negative(double value, const char* field, const char* caller) {
  if (!std::isfinite(value) || value < 0.0)
    throw std::invalid_argument(std::string(caller) + ": " + field +
                                " must be finite and non-negative, got " + std::to_string(value));
}

}  // namespace dpm::diffusion::inverse
