#include "diffusion/inverse/solver.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace dpm::diffusion::inverse {

int64_t Problem::validate(const MeasurementOperator& op, const char* caller,
                          bool require_positive_sigma) const {
  const std::string where = std::string(caller) + ": ";
  if (sample_shape.ndim() == 0)
    throw std::invalid_argument(where + "sample_shape is empty; expected the shape of one x0");
  const int64_t numel = sample_shape.numel();
  if (numel != op.input_dim())
    throw std::invalid_argument(where + "sample_shape has " + std::to_string(numel) +
                                " values, operator '" + op.name() + "' takes " +
                                std::to_string(op.input_dim()));
  const int64_t m = op.output_dim();
  if (y.empty() || static_cast<int64_t>(y.size()) % m != 0)
    throw std::invalid_argument(where + "y must hold whole rows of m = " + std::to_string(m) +
                                " values (operator '" + op.name() + "'), got " +
                                std::to_string(y.size()));
  if (!std::isfinite(sigma_y) || sigma_y < 0.0 || (require_positive_sigma && sigma_y == 0.0))
    throw std::invalid_argument(where + "sigma_y must be " +
                                (require_positive_sigma ? "positive" : "non-negative") +
                                " and finite, got " + std::to_string(sigma_y));
  return static_cast<int64_t>(y.size()) / m;
}

DoubleBatch Problem::batch(std::vector<double> values, int64_t rows) const {
  std::vector<int64_t> dims{rows};
  for (int i = 0; i < sample_shape.ndim(); ++i) dims.push_back(sample_shape[i]);
  DoubleBatch out{Shape(dims), std::move(values)};
  out.validate("Problem::batch");
  return out;
}

std::vector<double> standard_normals(Rng& rng, int64_t count) {
  std::vector<double> draws(static_cast<size_t>(count));
  for (double& v : draws) v = rng.normal();
  return draws;
}

void require_setting(bool ok, const char* caller, const char* field, const char* expected,
                     double value) {
  if (ok) return;
  std::ostringstream message;
  message << caller << ": " << field << " must be " << expected << ", got " << value;
  throw std::invalid_argument(message.str());
}

std::vector<int64_t> StepGrid::steps(const Schedule& schedule, const char* caller) const {
  const std::string where = std::string(caller) + ": ";
  const int64_t start = start_step == 0 ? schedule.T() : start_step;
  if (start < 1 || start > schedule.T())
    throw std::invalid_argument(where + "start_step must lie in 1.." +
                                std::to_string(schedule.T()) + " (0: T), got " +
                                std::to_string(start_step));
  if (end_step < 0 || end_step >= start)
    throw std::invalid_argument(where + "end_step must lie in 0.." + std::to_string(start - 1) +
                                ", got " + std::to_string(end_step));
  if (num_steps < 0 || num_steps > start - end_step)
    throw std::invalid_argument(
        where + "num_steps must lie in 0.." + std::to_string(start - end_step) +
        " (start_step - end_step; 0: all of them), got " + std::to_string(num_steps));
  const int64_t count = num_steps == 0 ? start - end_step : num_steps;
  const int64_t skip = (start - end_step) / count;
  std::vector<int64_t> grid(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) grid[static_cast<size_t>(i)] = end_step + 1 + i * skip;
  return grid;
}

std::vector<StepPair> descending_pairs(const std::vector<int64_t>& ascending_steps) {
  std::vector<StepPair> pairs;
  pairs.reserve(ascending_steps.size());
  for (size_t i = ascending_steps.size(); i-- > 0;)
    pairs.push_back({ascending_steps[i], i == 0 ? 0 : ascending_steps[i - 1]});
  return pairs;
}

DdimCoefficients ddim_coefficients(const Schedule& schedule, StepPair step, double eta) {
  const double abar_t = schedule.abar(step.t), abar_s = schedule.abar(step.s);
  const double c1 = eta * std::sqrt((1.0 - abar_t / abar_s) * (1.0 - abar_s) / (1.0 - abar_t));
  return {std::sqrt(abar_s), c1, std::sqrt(std::max(0.0, 1.0 - abar_s - c1 * c1))};
}

Prior network_prior(NetworkPredictor& network) {
  return {network, network.schedule(), [&network](int64_t t, const DoubleBatch& x) {
            return std::make_shared<NetworkEpsJacobian>(network, t, x, /*keep_graph=*/false);
          }};
}

Prior oracle_prior(GmmOracle& oracle) {
  return {oracle, oracle.schedule(), [&oracle](int64_t t, const DoubleBatch& x) {
            return std::make_shared<OracleEpsJacobian>(oracle, t, x);
          }};
}

}  // namespace dpm::diffusion::inverse
