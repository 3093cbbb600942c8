#include "diffusion/inverse/solver.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

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
