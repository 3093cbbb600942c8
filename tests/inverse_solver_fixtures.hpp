#pragma once
// Dense linear algebra and small problems shared by the inverse-solver tests (test_red_diff,
// test_ddrm): straightforward loops, independent of the solvers' own code paths.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/inverse/measurement_operator.hpp"
#include "diffusion/inverse/solver.hpp"
#include "diffusion/noise_predictor.hpp"

namespace dpm::testing {

// Row-major a [rows, cols] times each row of x [batch, cols] -> [batch, rows].
inline std::vector<double> multiply_rows(const std::vector<double>& a, int64_t rows, int64_t cols,
                                         const std::vector<double>& x) {
  const int64_t batch = static_cast<int64_t>(x.size()) / cols;
  std::vector<double> out(static_cast<size_t>(batch * rows), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) out[b * rows + i] += a[i * cols + j] * x[b * cols + j];
  return out;
}

inline std::vector<double> transposed(const std::vector<double>& a, int64_t rows, int64_t cols) {
  std::vector<double> t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

// Solves a [n, n] x = b for every row of b [batch, n] by Gaussian elimination with partial
// pivoting (a is small and well conditioned in these tests).
inline std::vector<double> solve_rows(std::vector<double> a, int64_t n, std::vector<double> b) {
  const int64_t batch = static_cast<int64_t>(b.size()) / n;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::abs(a[r * n + col]) > std::abs(a[pivot * n + col])) pivot = r;
    for (int64_t j = 0; j < n; ++j) std::swap(a[col * n + j], a[pivot * n + j]);
    for (int64_t q = 0; q < batch; ++q) std::swap(b[q * n + col], b[q * n + pivot]);
    for (int64_t r = col + 1; r < n; ++r) {
      const double factor = a[r * n + col] / a[col * n + col];
      for (int64_t j = col; j < n; ++j) a[r * n + j] -= factor * a[col * n + j];
      for (int64_t q = 0; q < batch; ++q) b[q * n + r] -= factor * b[q * n + col];
    }
  }
  for (int64_t q = 0; q < batch; ++q)
    for (int64_t r = n - 1; r >= 0; --r) {
      double sum = b[q * n + r];
      for (int64_t j = r + 1; j < n; ++j) sum -= a[r * n + j] * b[q * n + j];
      b[q * n + r] = sum / a[r * n + r];
    }
  return b;
}

inline double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

inline double max_abs_value(const std::vector<double>& a) {
  double top = 0.0;
  for (double v : a) top = std::max(top, std::abs(v));
  return top;
}

// Sigma_t = abar_t C + (1 - abar_t) I: the covariance of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t)
// eps for x0 ~ N(mu, C) (c [n, n]).
inline std::vector<double> noisy_covariance(const std::vector<double>& c, int64_t n, double abar) {
  std::vector<double> sigma(c.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      sigma[i * n + j] = abar * c[i * n + j] + (i == j ? 1.0 - abar : 0.0);
  return sigma;
}

// Delegates to another predictor and records the step and the row count of every call.
class RecordingPredictor final : public diffusion::NoisePredictor {
 public:
  explicit RecordingPredictor(diffusion::NoisePredictor& inner) : inner_(inner) {}
  std::vector<int64_t> steps, rows;

 private:
  Tensor compute_eps(const Tensor& x, int64_t t) override {
    steps.push_back(t);
    rows.push_back(x.shape()[0]);
    return inner_.predict_eps(x, t);
  }
  diffusion::DoubleBatch compute_eps_double(const diffusion::DoubleBatch& x, int64_t t) override {
    steps.push_back(t);
    rows.push_back(x.batch());
    return inner_.predict_eps(x, t);
  }
  diffusion::NoisePredictor& inner_;
};

// A linear map without a known SVD (only A and A^T): 2 x on R^n.
class DoublingOperator final : public diffusion::inverse::MeasurementOperator {
 public:
  explicit DoublingOperator(int64_t n) : n_(n) {}
  std::string name() const override { return "doubling"; }
  int64_t input_dim() const override { return n_; }
  int64_t output_dim() const override { return n_; }
  std::vector<double> apply(const std::vector<double>& x) override { return doubled(x); }
  std::vector<double> adjoint(const std::vector<double>& y) override { return doubled(y); }

 private:
  static std::vector<double> doubled(std::vector<double> v) {
    for (double& e : v) e *= 2.0;
    return v;
  }
  int64_t n_;
};

}  // namespace dpm::testing
