#include "diffusion/inverse/posterior.hpp"

#include <cblas.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "datasets/dense.hpp"

namespace dpm::diffusion::inverse {
namespace {

// Rows of y, after checking that y holds whole rows of the operator's output size m.
int64_t measurement_rows(const MeasurementOperator& op, const std::vector<double>& y,
                         const char* caller) {
  const int64_t m = op.output_dim();
  if (y.empty() || static_cast<int64_t>(y.size()) % m != 0)
    throw std::invalid_argument(
        std::string(caller) + ": y must hold rows of m = " + std::to_string(m) +
        " values (operator '" + op.name() + "'), got " + std::to_string(y.size()));
  return static_cast<int64_t>(y.size()) / m;
}

int64_t check_problem(const datasets::Gmm& prior, const MeasurementOperator& op,
                      const std::vector<double>& y, double sigma_y, const char* caller) {
  if (op.input_dim() != prior.dim)
    throw std::invalid_argument(std::string(caller) + ": operator '" + op.name() +
                                "' has input size " + std::to_string(op.input_dim()) +
                                ", the prior's dimension is " + std::to_string(prior.dim));
  if (!(sigma_y > 0.0) || !std::isfinite(sigma_y))
    throw std::invalid_argument(std::string(caller) +
                                ": sigma_y must be positive and finite, got " +
                                std::to_string(sigma_y));
  prior.validate(caller);
  return measurement_rows(op, y, caller);
}

// The posterior of one Gaussian prior N(mean, cov) under y = A x0 + sigma_y n.
class GaussianPosterior {
 public:
  GaussianPosterior(const double* mean, const double* cov, const std::vector<double>& a, int64_t m,
                    int64_t n, double sigma2, const char* caller)
      : mean_(mean),
        m_(m),
        n_(n),
        a_mean_(static_cast<size_t>(m), 0.0),
        a_cov_(static_cast<size_t>(m * n)),
        chol_(static_cast<size_t>(m * m)) {
    const int mi = static_cast<int>(m), ni = static_cast<int>(n);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, mi, ni, 1.0, a.data(), ni, mean, 1, 0.0,
                a_mean_.data(), 1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, ni, ni, 1.0, a.data(), ni, cov, ni,
                0.0, a_cov_.data(), ni);
    // S = (A C) A^T + sigma2 I, then its lower Cholesky factor.
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mi, ni, 1.0, a_cov_.data(), ni,
                a.data(), ni, 0.0, chol_.data(), mi);
    datasets::symmetrize(chol_.data(), m);
    for (int64_t i = 0; i < m; ++i) chol_[i * m + i] += sigma2;
    if (!datasets::cholesky_lower(chol_.data(), m, &log_det_))
      throw std::invalid_argument(std::string(caller) +
                                  ": A C A^T + sigma_y^2 I is not numerically positive definite");
  }

  // log N(y_i; A mean, S) into log_evidence [rows] and mean + C A^T S^-1 (y_i - A mean) into
  // means [rows, n].
  void evaluate(const std::vector<double>& y, int64_t rows, double* log_evidence,
                double* means) const {
    const int mi = static_cast<int>(m_), ni = static_cast<int>(n_), ri = static_cast<int>(rows);
    std::vector<double> solved(y.size());
    datasets::whiten_rows(y.data(), rows, m_, a_mean_.data(), chol_.data(), solved.data());
    for (int64_t i = 0; i < rows; ++i) {
      const double norm = datasets::row_norm(solved.data() + i * m_, m_);
      log_evidence[i] = datasets::gaussian_log_density(norm * norm, log_det_, m_);
    }
    // Row i is L^-1 r_i; solving V L = W makes it L^-T L^-1 r_i = S^-1 r_i.
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, ri, mi, 1.0,
                chol_.data(), mi, solved.data(), mi);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n_; ++j) means[i * n_ + j] = mean_[j];
    // (S^-1 r_i)^T (A C) is row i of (C A^T S^-1 r_i)^T, C being symmetric.
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ri, ni, mi, 1.0, solved.data(), mi,
                a_cov_.data(), ni, 1.0, means, ni);
  }

 private:
  const double* mean_;
  int64_t m_, n_;
  std::vector<double> a_mean_, a_cov_, chol_;  // A mean [m], A C [m, n], chol(S) [m, m]
  double log_det_ = 0.0;
};

}  // namespace

std::vector<double> posterior_mean(const datasets::Gmm& prior, MeasurementOperator& op,
                                   const std::vector<double>& y, double sigma_y) {
  const char* caller = "posterior_mean";
  const int64_t rows = check_problem(prior, op, y, sigma_y, caller);
  const int64_t m = op.output_dim(), n = prior.dim;
  const std::vector<double> a = dense_matrix(op), log_pi = prior.log_weights();
  // Online log-sum-exp: acc and total are scaled by exp(-top) of each row's largest log weight.
  std::vector<double> acc(static_cast<size_t>(rows * n), 0.0),
      total(static_cast<size_t>(rows), 0.0),
      top(static_cast<size_t>(rows), -std::numeric_limits<double>::infinity()),
      log_w(static_cast<size_t>(rows)), component(static_cast<size_t>(rows * n));
  for (int64_t k = 0; k < prior.components; ++k) {
    GaussianPosterior posterior(prior.means.data() + k * n, prior.covariances.data() + k * n * n, a,
                                m, n, sigma_y * sigma_y, caller);
    posterior.evaluate(y, rows, log_w.data(), component.data());
    for (int64_t i = 0; i < rows; ++i) {
      const double lw = log_pi[k] + log_w[i];
      if (lw > top[i]) {
        const double shrink = std::exp(top[i] - lw);
        for (int64_t j = 0; j < n; ++j) acc[i * n + j] *= shrink;
        total[i] *= shrink;
        top[i] = lw;
      }
      const double weight = std::exp(lw - top[i]);
      total[i] += weight;
      for (int64_t j = 0; j < n; ++j) acc[i * n + j] += weight * component[i * n + j];
    }
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) acc[i * n + j] /= total[i];
  return acc;
}

std::vector<double> lmmse(const datasets::Gmm& prior, MeasurementOperator& op,
                          const std::vector<double>& y, double sigma_y) {
  const char* caller = "lmmse";
  const int64_t rows = check_problem(prior, op, y, sigma_y, caller);
  const std::vector<double> mean = prior.mixture_mean(), cov = prior.mixture_covariance();
  GaussianPosterior posterior(mean.data(), cov.data(), dense_matrix(op), op.output_dim(), prior.dim,
                              sigma_y * sigma_y, caller);
  std::vector<double> log_evidence(static_cast<size_t>(rows)),
      out(static_cast<size_t>(rows * prior.dim));
  posterior.evaluate(y, rows, log_evidence.data(), out.data());
  return out;
}

std::vector<double> least_squares(MeasurementOperator& op, const std::vector<double>& y) {
  ScopedBatch scope(op, measurement_rows(op, y, "least_squares"));
  return op.pseudo_inverse(y);
}

}  // namespace dpm::diffusion::inverse
