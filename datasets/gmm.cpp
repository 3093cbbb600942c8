#include "datasets/gmm.hpp"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "autograd/io/safetensors.hpp"
#include "autograd/threading.hpp"
#include "datasets/dense.hpp"

namespace dpm::datasets {
namespace {

// Rows per block in the estimators and densities: large enough for efficient BLAS-3 solves,
// fixed so that every row sees the same computation whatever the thread count.
constexpr int64_t kRowBlock = 256;
// Rows per sampling chunk; each chunk draws from its own split stream.
constexpr int64_t kSampleChunk = 1024;

// Threads: oneTBB over fixed blocks of rows; the BLAS calls inside run on one thread.
void for_each_row_block(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  int64_t blocks = (n + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b * kRowBlock, std::min(n, (b + 1) * kRowBlock));
  });
}

double to_float32(double v) {
  return static_cast<double>(static_cast<float>(v));
}

double squared_norm(const double* v, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += v[i] * v[i];
  return s;
}

void require_noise_variance(double sigma2, const char* caller) {
  if (!(sigma2 >= 0.0) || !std::isfinite(sigma2))
    throw std::invalid_argument(std::string(caller) + ": sigma2 must be finite and >= 0, got " +
                                std::to_string(sigma2));
}

int64_t rows_of(const std::vector<double>& x, int64_t dim, const char* caller) {
  if (x.size() % static_cast<size_t>(dim) != 0)
    throw std::invalid_argument(std::string(caller) + ": input has " + std::to_string(x.size()) +
                                " values, not a multiple of the dimension " + std::to_string(dim));
  return static_cast<int64_t>(x.size()) / dim;
}

void require_factors_of(const Gmm& g, const GmmFactors& f, const char* caller) {
  if (static_cast<int64_t>(f.log_det.size()) != g.components ||
      static_cast<int64_t>(f.cholesky.size()) != g.components * g.dim * g.dim)
    throw std::invalid_argument(
        std::string(caller) + ": factors are for another GMM (expected K = " +
        std::to_string(g.components) + ", N = " + std::to_string(g.dim) + ")");
}

}  // namespace

void Gmm::validate(const std::string& context) const {
  auto fail = [&](const std::string& what) { throw std::invalid_argument(context + ": " + what); };
  if (dim <= 0 || components <= 0)
    fail("dimension and component count must be positive, got N = " + std::to_string(dim) +
         ", K = " + std::to_string(components));
  auto check_size = [&](const std::vector<double>& v, const char* field, int64_t expected) {
    if (static_cast<int64_t>(v.size()) != expected)
      fail(std::string(field) + " has " + std::to_string(v.size()) + " values, expected " +
           std::to_string(expected));
    for (double value : v)
      if (!std::isfinite(value)) fail(std::string(field) + " holds a non-finite value");
  };
  check_size(weights, "weights", components);
  check_size(means, "means", components * dim);
  check_size(covariances, "covariances", components * dim * dim);
  double sum = 0.0;
  for (double w : weights) {
    if (!(w > 0.0)) fail("weights must be positive, got " + std::to_string(w));
    sum += w;
  }
  if (std::abs(sum - 1.0) > 1e-5) fail("weights sum to " + std::to_string(sum) + ", not 1");
  for (int64_t k = 0; k < components; ++k) {
    const double* c = covariances.data() + k * dim * dim;
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < i; ++j)
        if (c[i * dim + j] != c[j * dim + i])
          fail("covariances: component " + std::to_string(k) + " is not symmetric at (" +
               std::to_string(i) + ", " + std::to_string(j) + ")");
  }
  std::vector<int64_t> failed;
  factorize(0.0, &failed);
  if (!failed.empty())
    fail("covariances: component " + std::to_string(failed.front()) +
         " is not positive definite (Cholesky failed)");
}

int64_t Gmm::round_to_float32() {
  for (auto* field : {&weights, &means})
    for (double& v : *field) v = to_float32(v);
  std::vector<char> jittered(static_cast<size_t>(components), 0);
  // Threads: oneTBB over components; each covariance is written by one chunk.
  parallel_for(components, 1, [&](int64_t k0, int64_t k1) {
    std::vector<double> exact(static_cast<size_t>(dim * dim)), factor(exact.size());
    for (int64_t k = k0; k < k1; ++k) {
      double* c = covariances.data() + k * dim * dim;
      std::copy(c, c + dim * dim, exact.begin());
      double max_diagonal = 0.0, log_det = 0.0;
      for (int64_t i = 0; i < dim; ++i) max_diagonal = std::max(max_diagonal, exact[i * dim + i]);
      for (int64_t e = 0; e < dim * dim; ++e) c[e] = to_float32(exact[e]);
      factor = exact;
      if (!cholesky_lower(factor.data(), dim, &log_det)) continue;  // validate() reports it
      // Rounding moves C by at most 2^-24 |C_ij| <= 2^-24 max_i C_ii per entry, so by at most
      // 2^-24 N max_i C_ii in norm: a jitter doubling up to 4 N eps_f32 max_i C_ii restores
      // positive definiteness whenever rounding broke it.
      const double eps = std::numeric_limits<float>::epsilon() * max_diagonal;
      for (double jitter = eps;; jitter *= 2) {
        std::copy(c, c + dim * dim, factor.begin());
        if (cholesky_lower(factor.data(), dim, &log_det)) break;
        if (jitter > 4.0 * static_cast<double>(dim) * eps) break;  // validate() reports it
        for (int64_t i = 0; i < dim; ++i) c[i * dim + i] = to_float32(exact[i * dim + i] + jitter);
        jittered[k] = 1;
      }
    }
  });
  return std::count(jittered.begin(), jittered.end(), 1);
}

std::vector<double> Gmm::log_weights() const {
  double sum = 0.0;
  for (double w : weights) sum += w;
  std::vector<double> out(weights.size());
  for (size_t k = 0; k < weights.size(); ++k) out[k] = std::log(weights[k] / sum);
  return out;
}

std::vector<double> Gmm::mixture_mean() const {
  std::vector<double> lw = log_weights();
  std::vector<double> m(static_cast<size_t>(dim), 0.0);
  for (int64_t k = 0; k < components; ++k) {
    double pi = std::exp(lw[k]);
    for (int64_t j = 0; j < dim; ++j) m[j] += pi * means[k * dim + j];
  }
  return m;
}

std::vector<double> Gmm::mixture_covariance() const {
  // sum_k pi_k (C_k + (mu_k - m)(mu_k - m)^T): centred, so no cancellation.
  std::vector<double> lw = log_weights(), m = mixture_mean();
  std::vector<double> c(static_cast<size_t>(dim * dim), 0.0), d(static_cast<size_t>(dim));
  for (int64_t k = 0; k < components; ++k) {
    double pi = std::exp(lw[k]);
    for (int64_t j = 0; j < dim; ++j) d[j] = means[k * dim + j] - m[j];
    const double* ck = covariances.data() + k * dim * dim;
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < dim; ++j) c[i * dim + j] += pi * (ck[i * dim + j] + d[i] * d[j]);
  }
  return c;
}

GmmFactors Gmm::factorize(double sigma2, std::vector<int64_t>* failed) const {
  require_noise_variance(sigma2, "Gmm::factorize");
  GmmFactors f;
  f.sigma2 = sigma2;
  f.cholesky = covariances;
  f.log_det.assign(static_cast<size_t>(components), 0.0);
  std::vector<char> ok(static_cast<size_t>(components), 0);
  // Threads: oneTBB over components; each factor is written by one chunk.
  parallel_for(components, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      double* a = f.cholesky.data() + k * dim * dim;
      for (int64_t i = 0; i < dim; ++i) a[i * dim + i] += sigma2;
      ok[k] = cholesky_lower(a, dim, &f.log_det[k]);
    }
  });
  for (int64_t k = 0; k < components; ++k) {
    if (ok[k]) continue;
    if (!failed)
      throw std::invalid_argument("Gmm::factorize: covariance of component " + std::to_string(k) +
                                  " plus " + std::to_string(sigma2) +
                                  " I is not positive definite");
    failed->push_back(k);
  }
  return f;
}

std::vector<double> Gmm::log_joint(const std::vector<double>& x, const GmmFactors& factors) const {
  int64_t n = rows_of(x, dim, "Gmm::log_joint");
  require_factors_of(*this, factors, "Gmm::log_joint");
  std::vector<double> lw = log_weights();
  std::vector<double> out(static_cast<size_t>(n * components));
  for_each_row_block(n, [&](int64_t begin, int64_t end) {
    int64_t rows = end - begin;
    std::vector<double> w(static_cast<size_t>(rows * dim));
    for (int64_t k = 0; k < components; ++k) {
      whiten_rows(x.data() + begin * dim, rows, dim, means.data() + k * dim,
                  factors.cholesky.data() + k * dim * dim, w.data());
      for (int64_t i = 0; i < rows; ++i)
        out[(begin + i) * components + k] =
            lw[k] +
            gaussian_log_density(squared_norm(w.data() + i * dim, dim), factors.log_det[k], dim);
    }
  });
  return out;
}

Tensor Gmm::sample(int64_t n, Rng& rng, std::vector<int>* labels) const {
  if (n < 0) throw std::invalid_argument("Gmm::sample: n must be >= 0, got " + std::to_string(n));
  GmmFactors f = factorize(0.0);
  std::vector<double> lw = log_weights(), cumulative(static_cast<size_t>(components));
  double acc = 0.0;
  for (int64_t k = 0; k < components; ++k) cumulative[k] = acc += std::exp(lw[k]);
  Tensor out = Tensor::empty({n, dim});
  if (labels) labels->assign(static_cast<size_t>(n), 0);
  Rng base(rng.next_u64());
  int64_t chunks = (n + kSampleChunk - 1) / kSampleChunk;
  // Threads: oneTBB over fixed chunks of rows, each with its own split stream.
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> z(static_cast<size_t>(dim));
    for (int64_t c = c0; c < c1; ++c) {
      Rng stream = base.split(static_cast<uint64_t>(c));
      for (int64_t i = c * kSampleChunk; i < std::min(n, (c + 1) * kSampleChunk); ++i) {
        double u = stream.uniform() * acc;
        int64_t k = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
        k = std::min(k, components - 1);
        for (double& v : z) v = stream.normal();
        cblas_dtrmv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, static_cast<int>(dim),
                    f.cholesky.data() + k * dim * dim, static_cast<int>(dim), z.data(), 1);
        float* row = out.data() + i * dim;
        for (int64_t j = 0; j < dim; ++j) row[j] = static_cast<float>(means[k * dim + j] + z[j]);
        if (labels) (*labels)[i] = static_cast<int>(k);
      }
    }
  });
  return out;
}

std::vector<double> Gmm::log_density(const Tensor& x) const {
  std::vector<double> xd = to_double_rows(x, dim, "Gmm::log_density", "x");
  int64_t n = static_cast<int64_t>(xd.size()) / dim;
  std::vector<double> joint = log_joint(xd, factorize(0.0));
  std::vector<double> out(static_cast<size_t>(n));
  // Threads: oneTBB over rows; each row's log-sum-exp is written by one chunk.
  parallel_for(n, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      out[i] = log_sum_exp(joint.data() + i * components, components);
  });
  return out;
}

double Gmm::nll_per_dim(const Tensor& x) const {
  std::vector<double> lp = log_density(x);
  if (lp.empty()) throw std::invalid_argument("Gmm::nll_per_dim: x has no rows");
  double sum = 0.0;
  for (double v : lp) sum += v;
  return -sum / static_cast<double>(lp.size()) / static_cast<double>(dim);
}

Tensor Gmm::cme(const Tensor& y, double sigma2) const {
  std::vector<double> yd = to_double_rows(y, dim, "Gmm::cme", "y");
  return to_tensor(cme(yd, factorize(sigma2)), static_cast<int64_t>(yd.size()) / dim, dim);
}

std::vector<double> Gmm::cme(const std::vector<double>& y, const GmmFactors& factors) const {
  int64_t n = rows_of(y, dim, "Gmm::cme");
  require_factors_of(*this, factors, "Gmm::cme");
  const double sigma2 = factors.sigma2;
  std::vector<double> lw = log_weights();
  std::vector<double> out(y.size());
  for_each_row_block(n, [&](int64_t begin, int64_t end) {
    int64_t rows = end - begin;
    const double* yb = y.data() + begin * dim;
    // Online softmax over components (fixed order): running max, sum of exp(lw - max) and the
    // correspondingly weighted sum of v_k = (C_k + sigma2 I)^-1 (y - mu_k).
    std::vector<double> top(static_cast<size_t>(rows), -std::numeric_limits<double>::infinity());
    std::vector<double> total(static_cast<size_t>(rows), 0.0);
    std::vector<double> acc(static_cast<size_t>(rows * dim), 0.0),
        v(static_cast<size_t>(rows * dim));
    std::vector<double> log_w(static_cast<size_t>(rows));
    for (int64_t k = 0; k < components; ++k) {
      const double* chol = factors.cholesky.data() + k * dim * dim;
      whiten_rows(yb, rows, dim, means.data() + k * dim, chol, v.data());
      for (int64_t i = 0; i < rows; ++i)
        log_w[i] = lw[k] + gaussian_log_density(squared_norm(v.data() + i * dim, dim),
                                                factors.log_det[k], dim);
      // Solve V L = W: row i becomes L^-T L^-1 (y_i - mu_k).
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
                  static_cast<int>(rows), static_cast<int>(dim), 1.0, chol, static_cast<int>(dim),
                  v.data(), static_cast<int>(dim));
      for (int64_t i = 0; i < rows; ++i) {
        double* a = acc.data() + i * dim;
        if (log_w[i] > top[i]) {
          double shrink = std::exp(top[i] - log_w[i]);
          total[i] *= shrink;
          for (int64_t j = 0; j < dim; ++j) a[j] *= shrink;
          top[i] = log_w[i];
        }
        double weight = std::exp(log_w[i] - top[i]);
        total[i] += weight;
        cblas_daxpy(static_cast<int>(dim), weight, v.data() + i * dim, 1, a, 1);
      }
    }
    // mu_k + C_k (C_k + sigma2 I)^-1 r = y - sigma2 (C_k + sigma2 I)^-1 r, averaged over gamma_k.
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < dim; ++j)
        out[(begin + i) * dim + j] = yb[i * dim + j] - sigma2 * acc[i * dim + j] / total[i];
  });
  return out;
}

Tensor Gmm::lmmse(const Tensor& y, double sigma2) const {
  std::vector<double> yd = to_double_rows(y, dim, "Gmm::lmmse", "y");
  return to_tensor(lmmse(yd, sigma2), static_cast<int64_t>(yd.size()) / dim, dim);
}

std::vector<double> Gmm::lmmse(const std::vector<double>& y, double sigma2) const {
  require_noise_variance(sigma2, "Gmm::lmmse");
  int64_t n = rows_of(y, dim, "Gmm::lmmse");
  std::vector<double> m = mixture_mean(), c = mixture_covariance();
  // Filter F^T = (C + sigma2 I)^-1 C, so that row i of the estimate is m + (y_i - m)^T F^T.
  std::vector<double> a = c, filter_t = c;
  for (int64_t i = 0; i < dim; ++i) a[i * dim + i] += sigma2;
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', static_cast<lapack_int>(dim),
                    static_cast<lapack_int>(dim), a.data(), static_cast<lapack_int>(dim),
                    filter_t.data(), static_cast<lapack_int>(dim)) != 0)
    throw std::invalid_argument(
        "Gmm::lmmse: mixture covariance + sigma2 I is not positive definite");
  std::vector<double> residual(y.size()), out(y.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) {
      residual[i * dim + j] = y[i * dim + j] - m[j];
      out[i * dim + j] = m[j];
    }
  // Threads: one OpenBLAS GEMM over all rows.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(dim),
              static_cast<int>(dim), 1.0, residual.data(), static_cast<int>(dim), filter_t.data(),
              static_cast<int>(dim), 1.0, out.data(), static_cast<int>(dim));
  return out;
}

namespace {

// out = left middle right (all [dim, dim]), symmetrised.
void sandwich(const std::vector<double>& left, const std::vector<double>& middle,
              const std::vector<double>& right, int64_t dim, double* out) {
  const int n = static_cast<int>(dim);
  std::vector<double> product(left.size());
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, left.data(), n,
              middle.data(), n, 0.0, product.data(), n);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, product.data(), n,
              right.data(), n, 0.0, out, n);
  symmetrize(out, dim);
}

// scikit-learn's make_spd_matrix, as the authors' code calls it: U (1 1^T + diag(u)) V^T with
// U S V^T the SVD of A^T A, A [dim, dim] and u [dim] uniform(0, 1).
void paper_covariance(Rng& rng, int64_t dim, double* out) {
  const int n = static_cast<int>(dim);
  std::vector<double> a(static_cast<size_t>(dim * dim)), gram(a.size()), u(a.size()), vt(a.size()),
      singular(static_cast<size_t>(dim));
  for (double& v : a) v = rng.uniform();
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, a.data(), n, 0.0,
              gram.data(), n);
  if (LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', n, n, gram.data(), n, singular.data(), u.data(), n,
                     vt.data(), n) != 0)
    throw std::runtime_error("make_random_gmm: SVD did not converge");
  std::vector<double> middle(a.size(), 1.0);
  for (int64_t j = 0; j < dim; ++j) middle[j * dim + j] += rng.uniform();
  sandwich(u, middle, vt, dim, out);
}

// Q diag(lambda) Q^T with Q Haar-distributed (QR of a Gaussian matrix, columns sign-fixed by
// sign(R_jj)) and lambda uniform in [1, 2].
void uniform_spectrum_covariance(Rng& rng, int64_t dim, double* out) {
  const lapack_int n = static_cast<lapack_int>(dim);
  std::vector<double> q(static_cast<size_t>(dim * dim)), qt(q.size()), middle(q.size(), 0.0),
      tau(static_cast<size_t>(dim)), sign(static_cast<size_t>(dim));
  for (double& v : q) v = rng.normal();
  LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, q.data(), n, tau.data());
  for (int64_t j = 0; j < dim; ++j) sign[j] = q[j * dim + j] < 0.0 ? -1.0 : 1.0;
  LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, q.data(), n, tau.data());
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j < dim; ++j) {
      q[i * dim + j] *= sign[j];
      qt[j * dim + i] = q[i * dim + j];
    }
  for (int64_t j = 0; j < dim; ++j) middle[j * dim + j] = rng.uniform(1.0, 2.0);
  sandwich(q, middle, qt, dim, out);
}

}  // namespace

Gmm make_random_gmm(Rng& rng, int64_t dim, int64_t components, RandomCovariance kind) {
  if (dim <= 0 || components <= 0)
    throw std::invalid_argument("make_random_gmm: dim and components must be positive, got " +
                                std::to_string(dim) + ", " + std::to_string(components));
  Gmm g;
  g.dim = dim;
  g.components = components;
  g.covariances.resize(static_cast<size_t>(components * dim * dim));
  for (int64_t k = 0; k < components; ++k) {
    double* c = g.covariances.data() + k * dim * dim;
    if (kind == RandomCovariance::paper)
      paper_covariance(rng, dim, c);
    else
      uniform_spectrum_covariance(rng, dim, c);
  }
  g.weights.resize(static_cast<size_t>(components));
  double sum = 0.0;
  for (double& w : g.weights) sum += w = 1.0 - rng.uniform();  // (0, 1]: no zero weight
  for (double& w : g.weights) w /= sum;
  g.means.resize(static_cast<size_t>(components * dim));
  for (double& v : g.means) v = rng.normal() / std::sqrt(static_cast<double>(dim));
  g.round_to_float32();
  return g;
}

Tensor ls(const Tensor& y) {
  return y;
}

double nmse(const Tensor& x, const Tensor& x_hat) {
  if (x.shape() != x_hat.shape())
    throw std::invalid_argument("nmse: x is " + x.shape().str() + " but x_hat is " +
                                x_hat.shape().str());
  Tensor a = x.contiguous(), b = x_hat.contiguous();
  double err = 0.0, power = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = static_cast<double>(a.data()[i]) - b.data()[i];
    err += d * d;
    power += static_cast<double>(a.data()[i]) * a.data()[i];
  }
  if (!(power > 0.0)) throw std::invalid_argument("nmse: x has zero power");
  return err / power;
}

double snr_db_to_sigma2(double snr_db) {
  return std::pow(10.0, -snr_db / 10.0);
}

Normalization Normalization::fit(const Tensor& train) {
  if (!train.defined() || train.ndim() != 2 || train.size(0) < 1 || train.size(1) < 1)
    throw std::invalid_argument("Normalization::fit: train must be [n, N] with n, N >= 1, got " +
                                (train.defined() ? train.shape().str() : std::string("undefined")));
  int64_t n = train.size(0), dim = train.size(1);
  std::vector<double> x = to_double_rows(train, dim, "Normalization::fit", "train");
  Normalization norm;
  norm.mean.assign(static_cast<size_t>(dim), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) norm.mean[j] += x[i * dim + j];
  for (double& m : norm.mean) m /= static_cast<double>(n);
  double power = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) {
      double d = x[i * dim + j] - norm.mean[j];
      power += d * d;
    }
  norm.scale = std::sqrt(power / static_cast<double>(n * dim));
  if (!(norm.scale > 0.0))
    throw std::invalid_argument("Normalization::fit: train has zero variance");
  return norm;
}

Tensor Normalization::apply(const Tensor& x) const {
  int64_t dim = static_cast<int64_t>(mean.size());
  std::vector<double> v = to_double_rows(x, dim, "Normalization::apply", "x");
  for (size_t i = 0; i < v.size(); ++i) v[i] = (v[i] - mean[i % mean.size()]) / scale;
  return to_tensor(v, static_cast<int64_t>(v.size()) / dim, dim);
}

Gmm Normalization::apply(const Gmm& gmm) const {
  if (static_cast<int64_t>(mean.size()) != gmm.dim)
    throw std::invalid_argument(
        "Normalization::apply: normalisation is for N = " + std::to_string(mean.size()) +
        ", the GMM has N = " + std::to_string(gmm.dim));
  Gmm out = gmm;
  for (size_t i = 0; i < out.means.size(); ++i)
    out.means[i] = (out.means[i] - mean[i % mean.size()]) / scale;
  for (double& c : out.covariances) c /= scale * scale;
  out.round_to_float32();
  return out;
}

namespace {
constexpr const char* kGmmFormat = "dpmlab.gmm";

Tensor field_tensor(const std::vector<double>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (size_t i = 0; i < values.size(); ++i) t.data()[i] = static_cast<float>(values[i]);
  return t;
}

std::vector<double> field_values(const SafeTensors& file, const char* name, const Shape& expected) {
  const Tensor& t = file.get(name);
  if (t.shape() != expected)
    throw std::invalid_argument("load_gmm(" + file.source + "): " + name + " has shape " +
                                t.shape().str() + ", expected " + expected.str());
  Tensor c = t.contiguous();
  return std::vector<double>(c.data(), c.data() + c.numel());
}
}  // namespace

void save_gmm(const Gmm& gmm, const std::string& path) {
  gmm.validate("save_gmm(" + path + ")");
  const int64_t k = gmm.components, n = gmm.dim;
  // The parameters are float32 values already (round_to_float32), so this is lossless.
  write_safetensors(path,
                    {{"weights", field_tensor(gmm.weights, {k})},
                     {"means", field_tensor(gmm.means, {k, n})},
                     {"covariances", field_tensor(gmm.covariances, {k, n, n})}},
                    {{"format", kGmmFormat}});
}

Gmm load_gmm(const std::string& path) {
  SafeTensors file = read_safetensors(path);
  const std::string context = "load_gmm(" + path + ")";
  auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kGmmFormat)
    throw std::invalid_argument(context + ": metadata \"format\" is not \"" + kGmmFormat + "\"");
  const Tensor& means = file.get("means");
  if (means.ndim() != 2)
    throw std::invalid_argument(context + ": means has shape " + means.shape().str() +
                                ", expected [K, N]");
  Gmm g;
  g.components = means.size(0);
  g.dim = means.size(1);
  g.weights = field_values(file, "weights", {g.components});
  g.means = field_values(file, "means", {g.components, g.dim});
  g.covariances = field_values(file, "covariances", {g.components, g.dim, g.dim});
  g.validate(context);
  return g;
}

}  // namespace dpm::datasets
