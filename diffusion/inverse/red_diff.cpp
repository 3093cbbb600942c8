#include "diffusion/inverse/red_diff.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace dpm::diffusion::inverse {
namespace {

// torch.optim.Adam as the authors configure it (betas (0.9, 0.99), eps 1e-8, no weight decay),
// with torch's arithmetic: step size lr / (1 - beta1^k), denominator sqrt(v) / sqrt(1 - beta2^k)
// + eps.
class Adam {
 public:
  Adam(size_t size, double lr) : lr_(lr), m_(size, 0.0), v_(size, 0.0) {}

  void step(std::vector<double>& params, const std::vector<double>& grad) {
    ++steps_;
    const double k = static_cast<double>(steps_);
    const double step_size = lr_ / (1.0 - std::pow(kBeta1, k));
    const double root_correction = std::sqrt(1.0 - std::pow(kBeta2, k));
    for (size_t i = 0; i < params.size(); ++i) {
      m_[i] = kBeta1 * m_[i] + (1.0 - kBeta1) * grad[i];
      v_[i] = kBeta2 * v_[i] + (1.0 - kBeta2) * grad[i] * grad[i];
      params[i] -= step_size * m_[i] / (std::sqrt(v_[i]) / root_correction + kEpsilon);
    }
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.99, kEpsilon = 1e-8;
  double lr_;
  std::vector<double> m_, v_;
  int64_t steps_ = 0;
};

// Checks the problem (likelihood divides by sigma_y^2, so it needs sigma_y > 0); returns B.
int64_t validate_problem(const RedDiffSettings& settings, const MeasurementOperator& op,
                         const Problem& problem, const char* caller) {
  return problem.validate(op, caller, settings.data_term == RedDiffDataTerm::likelihood);
}

void require_step(int64_t t, const Schedule& schedule, const char* caller, const char* field) {
  if (t < 1 || t > schedule.T())
    throw std::invalid_argument(std::string(caller) + ": " + field + " must lie in 1.." +
                                std::to_string(schedule.T()) + ", got " + std::to_string(t));
}

// The factors of the data gradient A^T (A x0 - y) and of the regulariser r_t in the step gradient.
struct TermScales {
  double data = 1.0, regulariser = 1.0;
};

TermScales term_scales(const RedDiffSettings& settings, const MeasurementOperator& op,
                       const Problem& problem, double abar_t) {
  const double w_t = settings.lambda * red_diff_weight(settings.weighting,
                                                       std::sqrt(1.0 - abar_t) / std::sqrt(abar_t));
  if (settings.data_term == RedDiffDataTerm::likelihood)
    return {settings.obs_weight / (problem.sigma_y * problem.sigma_y), w_t};
  return {settings.obs_weight / static_cast<double>(op.output_dim()),
          w_t / static_cast<double>(op.input_dim())};
}

// red_diff_gradient on checked arguments.
std::vector<double> step_gradient(const RedDiffSettings& settings, MeasurementOperator& op,
                                  const Problem& problem, const Prior& prior, int64_t rows,
                                  int64_t t, const std::vector<double>& mu,
                                  const std::vector<double>& noise_x0,
                                  const std::vector<double>& noise_xt) {
  const double abar_t = prior.schedule.abar(t);
  const double signal = std::sqrt(abar_t), noise = std::sqrt(1.0 - abar_t);
  const size_t size = mu.size();
  std::vector<double> x0_pred(size);
  for (size_t i = 0; i < size; ++i) x0_pred[i] = mu[i] + settings.sigma_x0 * noise_x0[i];

  // x_t in rows 0..B-1 and, when antithetic, its twin with -noise_xt in rows B..2B-1.
  const int64_t copies = settings.antithetic ? 2 : 1;
  std::vector<double> x_t(size * static_cast<size_t>(copies));
  for (size_t i = 0; i < size; ++i) {
    x_t[i] = signal * x0_pred[i] + noise * noise_xt[i];
    if (settings.antithetic) x_t[size + i] = signal * x0_pred[i] - noise * noise_xt[i];
  }
  const std::vector<double> eps =
      prior.predictor.predict_eps(problem.batch(std::move(x_t), rows * copies), t).values;

  ScopedBatch batch(op, rows);
  std::vector<double> residual = op.apply(x0_pred);
  for (size_t j = 0; j < residual.size(); ++j) residual[j] -= problem.y[j];
  std::vector<double> gradient = op.adjoint(residual);
  const TermScales scales = term_scales(settings, op, problem, abar_t);
  for (size_t i = 0; i < size; ++i) {
    const double r_t = settings.antithetic
                           ? 0.5 * ((eps[i] - noise_xt[i]) + (eps[size + i] + noise_xt[i]))
                           : eps[i] - noise_xt[i];
    gradient[i] = scales.data * gradient[i] + scales.regulariser * r_t;
  }
  return gradient;
}

// Adam on mu from A^+ y or A^T y, one step per entry of `steps` (already checked).
Restored run(const RedDiffSettings& settings, const std::vector<int64_t>& steps,
             MeasurementOperator& op, const Problem& problem, const Prior& prior, Rng& rng,
             int64_t rows) {
  std::vector<double> mu;
  {
    ScopedBatch batch(op, rows);
    mu = settings.start == RedDiffStart::pseudo_inverse ? op.pseudo_inverse(problem.y)
                                                        : op.adjoint(problem.y);
  }
  const int64_t size = static_cast<int64_t>(mu.size());
  Adam adam(mu.size(), settings.lr);
  for (int64_t t : steps) {
    const std::vector<double> noise_x0 = standard_normals(rng, size);
    const std::vector<double> noise_xt = standard_normals(rng, size);
    adam.step(mu, step_gradient(settings, op, problem, prior, rows, t, mu, noise_x0, noise_xt));
  }
  return {problem.batch(std::move(mu), rows), static_cast<int64_t>(steps.size()), 0};
}

std::vector<int64_t> ordered_steps(const std::vector<int64_t>& ascending, StepOrder order,
                                   Rng& rng) {
  switch (order) {
    case StepOrder::descending:
      return {ascending.rbegin(), ascending.rend()};
    case StepOrder::ascending:
      return ascending;
    case StepOrder::random: {
      std::vector<int64_t> shuffled;
      for (int64_t index : rng.permutation(static_cast<int64_t>(ascending.size())))
        shuffled.push_back(ascending[static_cast<size_t>(index)]);
      return shuffled;
    }
  }
  throw std::invalid_argument("red_diff: order is not a StepOrder");
}

}  // namespace

double red_diff_weight(RedDiffWeighting weighting, double inverse_sqrt_snr) {
  require_setting(std::isfinite(inverse_sqrt_snr) && inverse_sqrt_snr >= 0.0, "red_diff_weight",
                  "inverse_sqrt_snr", "non-negative and finite", inverse_sqrt_snr);
  const double r = inverse_sqrt_snr;
  switch (weighting) {
    case RedDiffWeighting::linear:
      return r;
    case RedDiffWeighting::sqrt:
      return std::sqrt(r);
    case RedDiffWeighting::square:
      return r * r;
    case RedDiffWeighting::log:
      return std::log1p(r);
    case RedDiffWeighting::trunc_linear:
      return std::min(r, 1.0);
    case RedDiffWeighting::constant:
      return 1.0;
  }
  throw std::invalid_argument("red_diff_weight: weighting is not a RedDiffWeighting");
}

void RedDiffSettings::validate(const char* caller) const {
  require_setting(std::isfinite(lr) && lr > 0.0, caller, "lr", "positive and finite", lr);
  require_setting(std::isfinite(lambda) && lambda >= 0.0, caller, "lambda",
                  "non-negative and finite", lambda);
  require_setting(std::isfinite(obs_weight) && obs_weight >= 0.0, caller, "obs_weight",
                  "non-negative and finite", obs_weight);
  require_setting(std::isfinite(sigma_x0) && sigma_x0 >= 0.0, caller, "sigma_x0",
                  "non-negative and finite", sigma_x0);
}

Restored red_diff(const RedDiffSettings& settings, MeasurementOperator& op, const Problem& problem,
                  const Prior& prior, Rng& rng) {
  settings.validate("red_diff");
  const int64_t rows = validate_problem(settings, op, problem, "red_diff");
  const std::vector<int64_t> steps =
      ordered_steps(settings.grid.steps(prior.schedule, "red_diff"), settings.order, rng);
  return run(settings, steps, op, problem, prior, rng, rows);
}

Restored red_diff_on_steps(const RedDiffSettings& settings, const std::vector<int64_t>& steps,
                           MeasurementOperator& op, const Problem& problem, const Prior& prior,
                           Rng& rng) {
  settings.validate("red_diff_on_steps");
  const int64_t rows = validate_problem(settings, op, problem, "red_diff_on_steps");
  for (int64_t t : steps) require_step(t, prior.schedule, "red_diff_on_steps", "every step");
  return run(settings, steps, op, problem, prior, rng, rows);
}

std::vector<double> red_diff_gradient(const RedDiffSettings& settings, MeasurementOperator& op,
                                      const Problem& problem, const Prior& prior, int64_t t,
                                      const std::vector<double>& mu,
                                      const std::vector<double>& noise_x0,
                                      const std::vector<double>& noise_xt) {
  const char* caller = "red_diff_gradient";
  settings.validate(caller);
  const int64_t rows = validate_problem(settings, op, problem, caller);
  require_step(t, prior.schedule, caller, "t");
  const size_t size = static_cast<size_t>(rows * op.input_dim());
  for (const auto& [field, values] :
       {std::pair{"mu", &mu}, std::pair{"noise_x0", &noise_x0}, std::pair{"noise_xt", &noise_xt}})
    if (values->size() != size)
      throw std::invalid_argument(std::string(caller) + ": " + field +
                                  " must hold [B, n] = " + std::to_string(size) + " values, got " +
                                  std::to_string(values->size()));
  return step_gradient(settings, op, problem, prior, rows, t, mu, noise_x0, noise_xt);
}

}  // namespace dpm::diffusion::inverse
