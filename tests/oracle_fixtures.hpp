#pragma once
// Random priors and points shared by the oracle and sampler tests (double precision, not rounded
// to float32, so closed forms can be compared to ~1e-12).
#include <cstdint>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"

namespace dpm::testing {

// A random SPD matrix A A^T / n + floor I (A standard normal), exactly symmetric.
inline std::vector<double> random_spd(Rng& rng, int64_t n, double floor) {
  std::vector<double> a(static_cast<size_t>(n * n)), c(a.size(), 0.0);
  for (double& v : a) v = rng.normal();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < n; ++k) s += a[i * n + k] * a[j * n + k];
      c[i * n + j] = c[j * n + i] = s / static_cast<double>(n) + (i == j ? floor : 0.0);
    }
  return c;
}

// K components in N dimensions: weights uniform in [0.2, 1) normalised, means `spread` times
// standard normal (well separated for spread >~ 1, so responsibilities change sharply somewhere),
// random SPD covariances.
inline datasets::Gmm random_mixture(Rng& rng, int64_t n, int64_t k_count, double spread) {
  datasets::Gmm g;
  g.dim = n;
  g.components = k_count;
  double total = 0.0;
  for (int64_t k = 0; k < k_count; ++k) total += g.weights.emplace_back(rng.uniform(0.2, 1.0));
  for (double& w : g.weights) w /= total;
  for (int64_t e = 0; e < k_count * n; ++e) g.means.push_back(spread * rng.normal());
  for (int64_t k = 0; k < k_count; ++k) {
    std::vector<double> c = random_spd(rng, n, 0.1);
    g.covariances.insert(g.covariances.end(), c.begin(), c.end());
  }
  return g;
}

inline std::vector<double> normal_rows(Rng& rng, int64_t rows, int64_t n, double scale) {
  std::vector<double> x(static_cast<size_t>(rows * n));
  for (double& v : x) v = scale * rng.normal();
  return x;
}

}  // namespace dpm::testing
