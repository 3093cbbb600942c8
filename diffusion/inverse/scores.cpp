#include "diffusion/inverse/scores.hpp"

#include <stdexcept>
#include <string>
#include <tuple>

#include "diffusion/error_stats.hpp"

namespace dpm::diffusion::inverse {

RestorationScore score_restoration(const std::vector<double>& x0, const std::vector<double>& x_hat,
                                   const std::vector<double>& posterior_mean, int64_t dim) {
  if (dim < 1 || x0.empty() || x0.size() % static_cast<size_t>(dim) != 0 ||
      x_hat.size() != x0.size() || posterior_mean.size() != x0.size())
    throw std::invalid_argument("score_restoration: x0, x_hat and posterior_mean must be [n, " +
                                std::to_string(dim) + "] alike, got " + std::to_string(x0.size()) +
                                ", " + std::to_string(x_hat.size()) + " and " +
                                std::to_string(posterior_mean.size()) + " values");
  const std::vector<double> zero(x0.size(), 0.0);
  const std::vector<double> power = squared_errors(x0, zero, dim);
  const std::vector<double> error = squared_errors(x0, x_hat, dim);
  const std::vector<double> optimum = squared_errors(x0, posterior_mean, dim);
  std::vector<double> paired(error.size());
  for (size_t i = 0; i < error.size(); ++i) paired[i] = error[i] - optimum[i];
  RestorationScore score;
  std::tie(score.nmse, score.nmse_se) = ratio_with_se(error, power);
  std::tie(score.gap, score.gap_se) = ratio_with_se(paired, power);
  std::tie(score.distance, score.distance_se) =
      ratio_with_se(squared_errors(posterior_mean, x_hat, dim), power);
  return score;
}

}  // namespace dpm::diffusion::inverse
