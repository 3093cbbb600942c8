#include "diffusion/oracle.hpp"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

#include "autograd/threading.hpp"
#include "datasets/dense.hpp"

namespace dpm::diffusion {
namespace {

// Rows per block: the whitened block [rows, K N] of the paper GMM (K N = 8192) is 4 MB; 64 rows
// were fastest among 8..256 here. A fixed size makes every row's arithmetic independent of the
// thread count.
constexpr int64_t kRowBlock = 64;

void require_step(const Schedule& schedule, int64_t t, int64_t first_step, const char* caller) {
  if (t < first_step || t > schedule.T())
    throw std::invalid_argument(std::string(caller) + ": step t must be in " +
                                std::to_string(first_step) + ".." + std::to_string(schedule.T()) +
                                ", got " + std::to_string(t));
}

// A block's whitened rows u [rows, K N], kept by the thread: for a 784-d GMM with K = 128 they are
// 51 MB per block, and a fresh allocation each call (mapped and zeroed page by page) took a fifth
// of the oracle's time. whiten() overwrites every entry the callers read.
double* whitened_scratch(int64_t size) {
  thread_local std::vector<double> buffer;
  if (buffer.size() < static_cast<size_t>(size)) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

// J = (I + beta H) * scale in place, for one [n, n] Hessian H.
void hessian_to_jacobian(double* h, int64_t n, double beta, double scale) {
  for (int64_t e = 0; e < n * n; ++e) h[e] = ((e % (n + 1) == 0 ? 1.0 : 0.0) + beta * h[e]) * scale;
}

}  // namespace

GmmOracle::GmmOracle(datasets::Gmm prior, Schedule schedule)
    : prior_(std::move(prior)), schedule_(std::move(schedule)) {
  prior_.validate("GmmOracle: prior");
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  eigenbases_.assign(static_cast<size_t>(n * width), 0.0);
  eigenvalues_.assign(static_cast<size_t>(k_count * n), 0.0);
  projected_means_.assign(static_cast<size_t>(k_count * n), 0.0);
  log_weights_ = prior_.log_weights();
  std::vector<char> ok(static_cast<size_t>(k_count), 0);
  // Threads: oneTBB over components; each writes only its own columns and rows.
  parallel_for(k_count, 1, [&](int64_t k0, int64_t k1) {
    std::vector<double> q(static_cast<size_t>(n * n));
    for (int64_t k = k0; k < k1; ++k) {
      const double* c = prior_.covariances.data() + k * n * n;
      std::copy(c, c + n * n, q.begin());
      double* lambda = eigenvalues_.data() + k * n;
      // Eigenvectors land in the columns of q.
      if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', static_cast<lapack_int>(n), q.data(),
                         static_cast<lapack_int>(n), lambda) != 0 ||
          !(lambda[0] > 0.0))
        continue;
      const double* mu = prior_.means.data() + k * n;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          eigenbases_[i * width + k * n + j] = q[i * n + j];
          projected_means_[k * n + j] += q[i * n + j] * mu[i];
        }
      ok[k] = 1;
    }
  });
  for (int64_t k = 0; k < k_count; ++k)
    if (!ok[k])
      throw std::invalid_argument("GmmOracle: eigendecomposition of covariance " +
                                  std::to_string(k) + " failed or found it not positive definite");
}

datasets::Gmm GmmOracle::marginal(int64_t t) const {
  require_step(schedule_, t, 0, "GmmOracle::marginal");
  const double abar = schedule_.abar(t);
  datasets::Gmm g = prior_;
  for (double& m : g.means) m *= std::sqrt(abar);
  for (double& c : g.covariances) c *= abar;
  for (int64_t k = 0; k < g.components; ++k)
    for (int64_t i = 0; i < prior_.dim; ++i)
      g.covariances[(k * prior_.dim + i) * prior_.dim + i] += 1.0 - abar;
  return g;
}

GmmOracle::StepTerms GmmOracle::step_terms(int64_t t, int64_t first_step,
                                           const char* caller) const {
  require_step(schedule_, t, first_step, caller);
  const int64_t n = prior_.dim, k_count = prior_.components;
  const double abar = schedule_.abar(t);
  StepTerms terms;
  terms.sqrt_abar = std::sqrt(abar);
  terms.inverse_variances.resize(eigenvalues_.size());
  terms.log_normaliser.resize(static_cast<size_t>(k_count));
  for (int64_t k = 0; k < k_count; ++k) {
    double log_det = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      double variance = abar * eigenvalues_[k * n + j] + (1.0 - abar);
      terms.inverse_variances[k * n + j] = 1.0 / variance;
      log_det += std::log(variance);
    }
    terms.log_normaliser[k] =
        log_weights_[k] -
        0.5 * (static_cast<double>(n) * std::log(2.0 * std::numbers::pi) + log_det);
  }
  return terms;
}

std::vector<double> GmmOracle::inverse_covariances(const StepTerms& terms) const {
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  std::vector<double> out(static_cast<size_t>(k_count * n * n));
  // Threads: oneTBB over components; the GEMM inside runs on one thread.
  parallel_for(k_count, 1, [&](int64_t k0, int64_t k1) {
    std::vector<double> scaled(static_cast<size_t>(n * n));
    for (int64_t k = k0; k < k1; ++k) {
      const double* q = eigenbases_.data() + k * n;  // Q_k with leading dimension K N
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          scaled[i * n + j] = q[i * width + j] * terms.inverse_variances[k * n + j];
      double* s = out.data() + k * n * n;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(n),
                  static_cast<int>(n), 1.0, scaled.data(), static_cast<int>(n), q,
                  static_cast<int>(width), 0.0, s, static_cast<int>(n));
      datasets::symmetrize(s, n);
    }
  });
  return out;
}

std::vector<double> GmmOracle::map_rows(const std::vector<double>& x, int64_t out_per_row,
                                        const BlockFn& block, const char* caller) const {
  const int64_t n = prior_.dim;
  if (x.size() % static_cast<size_t>(n) != 0)
    throw std::invalid_argument(std::string(caller) + ": x has " + std::to_string(x.size()) +
                                " values, not rows of the prior's dimension " + std::to_string(n));
  const int64_t rows = static_cast<int64_t>(x.size()) / n;
  std::vector<double> out(static_cast<size_t>(rows * out_per_row));
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Threads: oneTBB over fixed blocks of rows; every BLAS/LAPACK call inside runs on one thread.
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * kRowBlock, count = std::min(rows, begin + kRowBlock) - begin;
      block(x.data() + begin * n, count, out.data() + begin * out_per_row);
    }
  });
  return out;
}

void GmmOracle::whiten(const double* x, int64_t rows, const StepTerms& terms, double* u,
                       double* log_joint) const {
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  // Row i, segment k: x_i^T Q_k, for all components in one GEMM.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(width), static_cast<int>(n), 1.0, x, static_cast<int>(n),
              eigenbases_.data(), static_cast<int>(width), 0.0, u, static_cast<int>(width));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < k_count; ++k) {
      double* segment = u + i * width + k * n;
      const double* m = projected_means_.data() + k * n;
      const double* inv = terms.inverse_variances.data() + k * n;
      double quad = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        double r = segment[j] - terms.sqrt_abar * m[j];
        quad += r * r * inv[j];
        segment[j] = r * inv[j];
      }
      log_joint[i * k_count + k] = terms.log_normaliser[k] - 0.5 * quad;
    }
}

void GmmOracle::to_responsibilities(double* log_joint, int64_t rows, double* log_density) const {
  const int64_t k_count = prior_.components;
  for (int64_t i = 0; i < rows; ++i) {
    double* row = log_joint + i * k_count;
    double log_p = datasets::log_sum_exp(row, k_count);
    for (int64_t k = 0; k < k_count; ++k) row[k] = std::exp(row[k] - log_p);
    if (log_density) log_density[i] = log_p;
  }
}

void GmmOracle::score_block(const double* x, int64_t rows, const StepTerms& terms,
                            double* out) const {
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  double* u = whitened_scratch(rows * width);
  std::vector<double> w(static_cast<size_t>(rows * k_count));
  whiten(x, rows, terms, u, w.data());
  to_responsibilities(w.data(), rows, nullptr);
  const auto held = std::count_if(w.begin(), w.end(), [](double r) { return r > 0.0; });
  if (2 * held < rows * k_count) {
    back_map_held(u, w.data(), rows, out);
    return;
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < k_count; ++k) {
      double* segment = u + i * width + k * n;
      for (int64_t j = 0; j < n; ++j) segment[j] *= w[i * k_count + k];
    }
  // grad log p_t = -sum_k w_k S_k^-1 r_k = -sum_k Q_k (w_k u_k): one GEMM over all segments.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
              static_cast<int>(width), -1.0, u, static_cast<int>(width), eigenbases_.data(),
              static_cast<int>(width), 0.0, out, static_cast<int>(n));
}

void GmmOracle::back_map_held(const double* u, const double* w, int64_t rows, double* out) const {
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  std::fill(out, out + rows * n, 0.0);
  std::vector<double> packed(static_cast<size_t>(rows * n)), mapped(packed.size());
  std::vector<int64_t> held_rows;
  for (int64_t k = 0; k < k_count; ++k) {
    held_rows.clear();
    for (int64_t i = 0; i < rows; ++i) {
      const double r = w[i * k_count + k];
      if (!(r > 0.0)) continue;
      const double* segment = u + i * width + k * n;
      double* target = packed.data() + static_cast<int64_t>(held_rows.size()) * n;
      for (int64_t j = 0; j < n; ++j) target[j] = r * segment[j];
      held_rows.push_back(i);
    }
    if (held_rows.empty()) continue;
    const auto count = static_cast<int64_t>(held_rows.size());
    // mapped [count, N] = packed Q_k^T
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(count),
                static_cast<int>(n), static_cast<int>(n), 1.0, packed.data(), static_cast<int>(n),
                eigenbases_.data() + k * n, static_cast<int>(width), 0.0, mapped.data(),
                static_cast<int>(n));
    for (int64_t r = 0; r < count; ++r) {
      double* row = out + held_rows[r] * n;
      const double* m = mapped.data() + r * n;
      for (int64_t j = 0; j < n; ++j) row[j] -= m[j];
    }
  }
}

void GmmOracle::hessian_block(const double* x, int64_t rows, const StepTerms& terms,
                              const std::vector<double>& inverses, double* out) const {
  const int64_t n = prior_.dim, k_count = prior_.components, width = k_count * n;
  std::vector<double> u(static_cast<size_t>(rows * width)), w(static_cast<size_t>(rows * k_count));
  whiten(x, rows, terms, u.data(), w.data());
  to_responsibilities(w.data(), rows, nullptr);
  // g_k = -S_k^-1 r_k = -Q_k u_k for every component (segment k of each row of `g`).
  std::vector<double> g(u.size());
  for (int64_t k = 0; k < k_count; ++k)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(n), static_cast<int>(n), -1.0, u.data() + k * n,
                static_cast<int>(width), eigenbases_.data() + k * n, static_cast<int>(width), 0.0,
                g.data() + k * n, static_cast<int>(width));
  // sum_k w_k S_k^-1 for every row: [rows, K] x [K, N N].
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(n * n), static_cast<int>(k_count), 1.0, w.data(),
              static_cast<int>(k_count), inverses.data(), static_cast<int>(n * n), 0.0, out,
              static_cast<int>(n * n));
  std::vector<double> mean(static_cast<size_t>(n)), centred(static_cast<size_t>(k_count * n)),
      spread(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < rows; ++i) {
    const double* gi = g.data() + i * width;
    const double* wi = w.data() + i * k_count;
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t j = 0; j < n; ++j) mean[j] += wi[k] * gi[k * n + j];
    for (int64_t k = 0; k < k_count; ++k) {
      double root = std::sqrt(wi[k]);
      for (int64_t j = 0; j < n; ++j) centred[k * n + j] = root * (gi[k * n + j] - mean[j]);
    }
    // sum_k w_k (g_k - g)(g_k - g)^T = C^T C with C [K, N] (lower triangle).
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<int>(n),
                static_cast<int>(k_count), 1.0, centred.data(), static_cast<int>(n), 0.0,
                spread.data(), static_cast<int>(n));
    double* h = out + i * n * n;
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b <= a; ++b) {
        double v = spread[a * n + b] - h[a * n + b];
        h[a * n + b] = v;
        h[b * n + a] = v;
      }
  }
}

std::vector<double> GmmOracle::log_density(const std::vector<double>& x, int64_t t) const {
  const StepTerms terms = step_terms(t, 0, "GmmOracle::log_density");
  const int64_t width = prior_.components * prior_.dim;
  return map_rows(
      x, 1,
      [&](const double* xb, int64_t rows, double* out) {
        std::vector<double> w(static_cast<size_t>(rows * prior_.components));
        whiten(xb, rows, terms, whitened_scratch(rows * width), w.data());
        to_responsibilities(w.data(), rows, out);
      },
      "GmmOracle::log_density");
}

std::vector<double> GmmOracle::score(const std::vector<double>& x, int64_t t) const {
  const StepTerms terms = step_terms(t, 0, "GmmOracle::score");
  return map_rows(
      x, prior_.dim,
      [&](const double* xb, int64_t rows, double* out) { score_block(xb, rows, terms, out); },
      "GmmOracle::score");
}

std::vector<double> GmmOracle::eps(const std::vector<double>& x, int64_t t) const {
  require_step(schedule_, t, 1, "GmmOracle::eps");
  std::vector<double> out = score(x, t);
  const double scale = -std::sqrt(1.0 - schedule_.abar(t));
  for (double& v : out) v *= scale;
  return out;
}

std::vector<double> GmmOracle::hessian(const std::vector<double>& x, int64_t t) const {
  const StepTerms terms = step_terms(t, 0, "GmmOracle::hessian");
  const std::vector<double> inverses = inverse_covariances(terms);
  return map_rows(
      x, prior_.dim * prior_.dim,
      [&](const double* xb, int64_t rows, double* out) {
        hessian_block(xb, rows, terms, inverses, out);
      },
      "GmmOracle::hessian");
}

std::vector<double> GmmOracle::stepwise_cme(const std::vector<double>& x, int64_t t) const {
  require_step(schedule_, t, 1, "GmmOracle::stepwise_cme");
  std::vector<double> out = score(x, t);
  const double beta = schedule_.beta(t), scale = 1.0 / std::sqrt(schedule_.alpha(t));
  for (size_t i = 0; i < out.size(); ++i) out[i] = (x[i] + beta * out[i]) * scale;
  return out;
}

std::vector<double> GmmOracle::stepwise_jacobian(const std::vector<double>& x, int64_t t) const {
  require_step(schedule_, t, 1, "GmmOracle::stepwise_jacobian");
  std::vector<double> out = hessian(x, t);
  const int64_t n = prior_.dim;
  const double beta = schedule_.beta(t), scale = 1.0 / std::sqrt(schedule_.alpha(t));
  for (size_t offset = 0; offset < out.size(); offset += static_cast<size_t>(n * n))
    hessian_to_jacobian(out.data() + offset, n, beta, scale);
  return out;
}

std::vector<double> GmmOracle::stepwise_jacobian_norm(const std::vector<double>& x,
                                                      int64_t t) const {
  const StepTerms terms = step_terms(t, 1, "GmmOracle::stepwise_jacobian_norm");
  const std::vector<double> inverses = inverse_covariances(terms);
  const int64_t n = prior_.dim;
  const double beta = schedule_.beta(t), scale = 1.0 / std::sqrt(schedule_.alpha(t));
  std::vector<double> norms = map_rows(
      x, 1,
      [&](const double* xb, int64_t rows, double* out) {
        std::vector<double> h(static_cast<size_t>(rows * n * n)), eig(static_cast<size_t>(n));
        hessian_block(xb, rows, terms, inverses, h.data());
        for (int64_t i = 0; i < rows; ++i) {
          double* j = h.data() + i * n * n;
          hessian_to_jacobian(j, n, beta, scale);
          // Eigenvalues ascend: the norm is the larger of |first| and |last|. A failed solve
          // leaves NaN, reported below (no exception may leave a parallel region).
          out[i] = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', static_cast<lapack_int>(n), j,
                                  static_cast<lapack_int>(n), eig.data()) == 0
                       ? std::max(std::fabs(eig.front()), std::fabs(eig.back()))
                       : std::numeric_limits<double>::quiet_NaN();
        }
      },
      "GmmOracle::stepwise_jacobian_norm");
  for (size_t i = 0; i < norms.size(); ++i)
    if (std::isnan(norms[i]))
      throw std::runtime_error("GmmOracle::stepwise_jacobian_norm: eigen-solve failed for row " +
                               std::to_string(i));
  return norms;
}

DoubleBatch GmmOracle::compute_eps_double(const DoubleBatch& x, int64_t t) {
  x.validate("GmmOracle::predict_eps");
  if (x.row_size() != prior_.dim)
    throw std::invalid_argument("GmmOracle::predict_eps: samples of shape " + x.shape.str() +
                                " have " + std::to_string(x.row_size()) +
                                " values each, the prior has dimension " +
                                std::to_string(prior_.dim));
  return {x.shape, eps(x.values, t)};
}

Tensor GmmOracle::compute_eps(const Tensor& x, int64_t t) {
  return compute_eps_double(DoubleBatch::from_tensor(x), t).to_tensor();
}

}  // namespace dpm::diffusion
