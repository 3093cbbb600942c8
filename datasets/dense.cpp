#include "datasets/dense.hpp"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

namespace dpm::datasets {

std::vector<double> to_double_rows(const Tensor& x, int64_t cols, const char* caller,
                                   const char* argument) {
  if (!x.defined() || x.ndim() != 2 || x.size(1) != cols)
    throw std::invalid_argument(std::string(caller) + ": " + argument + " must be [n, " +
                                std::to_string(cols) + "], got " +
                                (x.defined() ? x.shape().str() : std::string("undefined")));
  Tensor c = x.contiguous();
  const float* p = c.data();
  return std::vector<double>(p, p + c.numel());
}

Tensor to_tensor(const std::vector<double>& values, int64_t rows, int64_t cols) {
  Tensor t = Tensor::empty({rows, cols});
  float* p = t.data();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<float>(values[i]);
  return t;
}

bool cholesky_lower(double* a, int64_t n, double* log_det) {
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', static_cast<lapack_int>(n), a,
                     static_cast<lapack_int>(n)) != 0)
    return false;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    sum += std::log(a[i * n + i]);
    std::fill(a + i * n + i + 1, a + (i + 1) * n, 0.0);
  }
  *log_det = 2.0 * sum;
  return true;
}

void whiten_rows(const double* x, int64_t rows, int64_t dim, const double* mean, const double* chol,
                 double* w) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < dim; ++j) w[i * dim + j] = x[i * dim + j] - mean[j];
  // Solve W L^T = R: row i of W is L^{-1} r_i.
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
              static_cast<int>(rows), static_cast<int>(dim), 1.0, chol, static_cast<int>(dim), w,
              static_cast<int>(dim));
}

double gaussian_log_density(double whitened_sq_norm, double log_det, int64_t dim) {
  return -0.5 *
         (static_cast<double>(dim) * std::log(2.0 * std::numbers::pi) + log_det + whitened_sq_norm);
}

double row_norm(const double* row, int64_t n) {
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += row[j] * row[j];
  return std::sqrt(sum);
}

double row_distance(const double* a, const double* b, int64_t n) {
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += (a[j] - b[j]) * (a[j] - b[j]);
  return std::sqrt(sum);
}

double log_sum_exp(const double* v, int64_t n) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) top = std::max(top, v[i]);
  if (!std::isfinite(top)) return top;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(v[i] - top);
  return top + std::log(sum);
}

void symmetrize(double* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) {
      double mean = 0.5 * (a[i * n + j] + a[j * n + i]);
      a[i * n + j] = mean;
      a[j * n + i] = mean;
    }
}

double dgemm_gflops(int64_t n) {
  std::vector<double> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {  // any values: the rate does not depend on them
    a[i] = static_cast<double>(i % 17) / 17.0;
    b[i] = static_cast<double>(i % 13) / 13.0;
  }
  double best = 0.0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n),
                static_cast<int>(n), 1.0, a.data(), static_cast<int>(n), b.data(),
                static_cast<int>(n), 0.0, c.data(), static_cast<int>(n));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * static_cast<double>(n) * n * n / seconds / 1e9);
  }
  return best;
}

}  // namespace dpm::datasets
