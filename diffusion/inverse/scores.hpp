#pragma once
// How a restoration is scored against the truth and the exact posterior mean (docs/inverse.md,
// The benchmark): over n test rows with e_i = ||x_hat_i - x0_i||^2 and p_i = ||x0_i||^2,
//   nmse     = sum_i e_i / sum_i p_i,
//   gap      = sum_i (e_i - e_i(posterior mean)) / sum_i p_i   (paired: the same y for both),
//   distance = sum_i ||x_hat_i - E[x0 | y_i]||^2 / sum_i p_i   (how far from the optimum),
// each with its delta-method standard error (diffusion/error_stats.hpp).
#include <cstdint>
#include <vector>

namespace dpm::diffusion::inverse {

struct RestorationScore {
  double nmse = 0, nmse_se = 0;
  double gap = 0, gap_se = 0;
  double distance = 0, distance_se = 0;
};

// x0, x_hat and posterior_mean are [n, dim] row-major.
RestorationScore score_restoration(const std::vector<double>& x0, const std::vector<double>& x_hat,
                                   const std::vector<double>& posterior_mean, int64_t dim);

}  // namespace dpm::diffusion::inverse
