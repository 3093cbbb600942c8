#pragma once
// The error statistics the benchmarks report (docs/protocol.md, The denoiser): per-sample squared
// errors and a ratio of sums with its delta-method standard error, so NMSE = sum_i e_i / sum_i p_i
// and a paired gap sum_i (e_i - e'_i) / sum_i p_i come with the same standard error.
#include <cstdint>
#include <utility>
#include <vector>

namespace dpm::diffusion {

// ||x_i - x_hat_i||^2 for the rows of x and x_hat [n, dim].
std::vector<double> squared_errors(const std::vector<double>& x, const std::vector<double>& x_hat,
                                   int64_t dim);

// sum_i v_i / sum_i p_i and its standard error sqrt(sum_i (v_i - r p_i)^2) / sum_i p_i.
std::pair<double, double> ratio_with_se(const std::vector<double>& v, const std::vector<double>& p);

}  // namespace dpm::diffusion
