#include "diffusion/error_stats.hpp"

#include <cmath>

namespace dpm::diffusion {

std::vector<double> squared_errors(const std::vector<double>& x, const std::vector<double>& x_hat,
                                   int64_t dim) {
  std::vector<double> e(x.size() / static_cast<size_t>(dim), 0.0);
  for (size_t i = 0; i < e.size(); ++i)
    for (int64_t j = 0; j < dim; ++j) {
      const double d = x[i * dim + j] - x_hat[i * dim + j];
      e[i] += d * d;
    }
  return e;
}

std::pair<double, double> ratio_with_se(const std::vector<double>& v,
                                        const std::vector<double>& p) {
  double sum_v = 0.0, sum_p = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum_v += v[i];
    sum_p += p[i];
  }
  const double r = sum_v / sum_p;
  double spread = 0.0;
  for (size_t i = 0; i < v.size(); ++i) spread += (v[i] - r * p[i]) * (v[i] - r * p[i]);
  return {r, std::sqrt(spread) / sum_p};
}

}  // namespace dpm::diffusion
