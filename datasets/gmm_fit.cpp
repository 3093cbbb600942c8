#include "datasets/gmm_fit.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/dense.hpp"

namespace dpm::datasets {
namespace {

constexpr int64_t kBlock = 512;  // rows per BLAS-3 block (scatter, nearest centres)

struct Data {
  std::vector<double> x;  // [n, dim]
  int64_t n = 0;
  int64_t dim = 0;
  const double* row(int64_t i) const { return x.data() + i * dim; }
};

// sum_i r_i (x_i - mean)(x_i - mean)^T over the listed rows (full symmetric [dim, dim] in out),
// by SYRK on blocks of sqrt(r_i)-scaled residuals, accumulated in a fixed block order.
void weighted_scatter(const Data& data, const std::vector<int64_t>& rows,
                      const std::vector<double>& r, const double* mean, double* out) {
  const int64_t dim = data.dim;
  std::fill(out, out + dim * dim, 0.0);
  std::vector<double> block(static_cast<size_t>(kBlock * dim));
  for (size_t b = 0; b < rows.size(); b += kBlock) {
    int64_t m = std::min<int64_t>(kBlock, static_cast<int64_t>(rows.size() - b));
    for (int64_t i = 0; i < m; ++i) {
      double s = std::sqrt(r[b + i]);
      const double* x = data.row(rows[b + i]);
      for (int64_t j = 0; j < dim; ++j) block[i * dim + j] = s * (x[j] - mean[j]);
    }
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<int>(dim), static_cast<int>(m),
                1.0, block.data(), static_cast<int>(dim), 1.0, out, static_cast<int>(dim));
  }
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j < i; ++j) out[j * dim + i] = out[i * dim + j];
}

void add_to_diagonal(double* a, int64_t dim, double value) {
  for (int64_t i = 0; i < dim; ++i) a[i * dim + i] += value;
}

// M-step from responsibilities resp [n, K]: weights N_k / n, weighted means and covariances
// plus reg_covar I. Components below min_weight keep their old mean and covariance (they are
// re-seeded next). Threads: oneTBB over components; each component's parameters are written by
// one chunk, its sums taken over rows in a fixed order.
void m_step(const Data& data, const std::vector<double>& resp, const GmmFitOptions& options,
            Gmm& model) {
  const int64_t K = model.components, dim = data.dim;
  parallel_for(K, 1, [&](int64_t k0, int64_t k1) {
    std::vector<int64_t> rows;
    std::vector<double> r;
    for (int64_t k = k0; k < k1; ++k) {
      rows.clear();
      r.clear();
      double nk = 0.0;
      for (int64_t i = 0; i < data.n; ++i) {
        double v = resp[i * K + k];
        if (v <= 0.0) continue;  // exact zeros contribute nothing; skipping them is exact
        rows.push_back(i);
        r.push_back(v);
        nk += v;
      }
      model.weights[k] = nk / static_cast<double>(data.n);
      if (model.weights[k] < options.min_weight || nk <= 0.0) continue;
      double* mean = model.means.data() + k * dim;
      std::fill(mean, mean + dim, 0.0);
      for (size_t t = 0; t < rows.size(); ++t) {
        const double* x = data.row(rows[t]);
        for (int64_t j = 0; j < dim; ++j) mean[j] += r[t] * x[j];
      }
      for (int64_t j = 0; j < dim; ++j) mean[j] /= nk;
      double* cov = model.covariances.data() + k * dim * dim;
      weighted_scatter(data, rows, r, mean, cov);
      for (int64_t j = 0; j < dim * dim; ++j) cov[j] /= nk;
      add_to_diagonal(cov, dim, options.reg_covar);
    }
  });
}

// Index of the nearest centre of every row, by ||c||^2 - 2 x.c from one GEMM per block of rows.
// Threads: oneTBB over blocks of rows; each label is written by one chunk.
std::vector<int64_t> nearest_centres(const Data& data, const std::vector<double>& centres,
                                     int64_t K) {
  const int64_t dim = data.dim;
  std::vector<double> centre_sq(static_cast<size_t>(K), 0.0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < dim; ++j) centre_sq[k] += centres[k * dim + j] * centres[k * dim + j];
  std::vector<int64_t> labels(static_cast<size_t>(data.n));
  int64_t blocks = (data.n + kBlock - 1) / kBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> dots(static_cast<size_t>(kBlock * K));
    for (int64_t b = b0; b < b1; ++b) {
      int64_t begin = b * kBlock, rows = std::min(data.n, begin + kBlock) - begin;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(K), static_cast<int>(dim), 1.0, data.row(begin),
                  static_cast<int>(dim), centres.data(), static_cast<int>(dim), 0.0, dots.data(),
                  static_cast<int>(K));
      for (int64_t i = 0; i < rows; ++i) {
        int64_t best = 0;
        double best_d = std::numeric_limits<double>::infinity();
        for (int64_t k = 0; k < K; ++k) {
          double d = centre_sq[k] - 2.0 * dots[i * K + k];
          if (d < best_d) best_d = d, best = k;
        }
        labels[begin + i] = best;
      }
    }
  });
  return labels;
}

// k-means++ seeding (each next centre drawn with probability proportional to the squared
// distance to the nearest chosen one), Lloyd iterations, then the M-step of the hard assignment.
Gmm kmeans_init(const Data& data, const GmmFitOptions& options, Rng& rng) {
  const int64_t K = options.components, dim = data.dim, n = data.n;
  std::vector<double> centres(static_cast<size_t>(K * dim));
  std::vector<double> d2(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  int64_t pick = static_cast<int64_t>(rng.integer(static_cast<uint64_t>(n)));
  for (int64_t c = 0; c < K; ++c) {
    if (c > 0) {
      double total = 0.0;
      for (double v : d2) total += v;
      pick = n - 1;
      if (total > 0.0) {
        double u = rng.uniform() * total, cumulative = 0.0;
        for (int64_t i = 0; i < n; ++i)
          if ((cumulative += d2[i]) > u) {
            pick = i;
            break;
          }
      } else {
        pick = static_cast<int64_t>(rng.integer(static_cast<uint64_t>(n)));
      }
    }
    std::copy(data.row(pick), data.row(pick) + dim, centres.begin() + c * dim);
    const double* centre = centres.data() + c * dim;
    // Threads: oneTBB over rows; each distance is written by one chunk.
    parallel_for(n, 1024, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double s = 0.0;
        for (int64_t j = 0; j < dim; ++j) {
          double d = data.row(i)[j] - centre[j];
          s += d * d;
        }
        d2[i] = std::min(d2[i], s);
      }
    });
  }
  std::vector<int64_t> labels = nearest_centres(data, centres, K);
  for (int it = 0; it < options.kmeans_iterations; ++it) {
    std::vector<double> sums(centres.size(), 0.0), counts(static_cast<size_t>(K), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      counts[labels[i]] += 1.0;
      for (int64_t j = 0; j < dim; ++j) sums[labels[i] * dim + j] += data.row(i)[j];
    }
    for (int64_t k = 0; k < K; ++k)
      if (counts[k] > 0.0)  // an empty cluster keeps its centre
        for (int64_t j = 0; j < dim; ++j) centres[k * dim + j] = sums[k * dim + j] / counts[k];
    labels = nearest_centres(data, centres, K);
  }
  Gmm model;
  model.dim = dim;
  model.components = K;
  model.weights.assign(static_cast<size_t>(K), 0.0);
  model.means = centres;
  model.covariances.assign(static_cast<size_t>(K * dim * dim), 0.0);
  std::vector<double> resp(static_cast<size_t>(n * K), 0.0);
  for (int64_t i = 0; i < n; ++i) resp[i * K + labels[i]] = 1.0;
  m_step(data, resp, options, model);
  return model;
}

// Re-seeds every collapsed component (weight below min_weight, or covariance not positive
// definite) at a random data point with the data covariance and weight 1/K, renormalises the
// weights, and returns the factors of the repaired model and the number of re-seeded components.
std::pair<GmmFactors, int64_t> reseed_collapsed(const Data& data,
                                                const std::vector<double>& data_covariance,
                                                const GmmFitOptions& options, Rng& rng,
                                                Gmm& model) {
  const int64_t K = model.components, dim = data.dim;
  std::vector<int64_t> failed;
  GmmFactors factors = model.factorize(0.0, &failed);
  std::vector<char> collapsed(static_cast<size_t>(K), 0);
  for (int64_t k : failed) collapsed[k] = 1;
  for (int64_t k = 0; k < K; ++k)
    if (model.weights[k] < options.min_weight) collapsed[k] = 1;
  int64_t count = 0;
  for (int64_t k = 0; k < K; ++k) {
    if (!collapsed[k]) continue;
    ++count;
    const double* seed = data.row(static_cast<int64_t>(rng.integer(static_cast<uint64_t>(data.n))));
    std::copy(seed, seed + dim, model.means.begin() + k * dim);
    std::copy(data_covariance.begin(), data_covariance.end(),
              model.covariances.begin() + k * dim * dim);
    model.weights[k] = 1.0 / static_cast<double>(K);
  }
  if (count == 0) return {std::move(factors), 0};
  double sum = 0.0;
  for (double w : model.weights) sum += w;
  for (double& w : model.weights) w /= sum;
  failed.clear();
  factors = model.factorize(0.0, &failed);
  if (!failed.empty())
    throw std::invalid_argument(
        "fit_gmm: the data covariance plus reg_covar I is not positive definite; use a larger "
        "reg_covar (now " +
        std::to_string(options.reg_covar) + ")");
  return {std::move(factors), count};
}

}  // namespace

GmmFitResult fit_gmm(const Tensor& data_tensor, const GmmFitOptions& options) {
  if (!data_tensor.defined() || data_tensor.ndim() != 2)
    throw std::invalid_argument(
        "fit_gmm: data must be [n, D], got " +
        (data_tensor.defined() ? data_tensor.shape().str() : std::string("undefined")));
  Data data;
  data.n = data_tensor.size(0);
  data.dim = data_tensor.size(1);
  data.x = to_double_rows(data_tensor, data.dim, "fit_gmm", "data");
  const int64_t K = options.initial ? options.initial->components : options.components;
  if (K < 1 || data.n < K || data.dim < 1)
    throw std::invalid_argument(
        "fit_gmm: need D >= 1 and n >= K >= 1, got n = " + std::to_string(data.n) +
        ", D = " + std::to_string(data.dim) + ", K = " + std::to_string(K));
  if (options.max_iterations < 1 || !(options.reg_covar >= 0.0) || !(options.tolerance >= 0.0) ||
      !(options.min_weight > 0.0))
    throw std::invalid_argument(
        "fit_gmm: max_iterations must be >= 1, reg_covar and tolerance >= 0, min_weight > 0");
  if (options.initial) {
    options.initial->validate("fit_gmm: initial model");
    if (options.initial->dim != data.dim)
      throw std::invalid_argument(
          "fit_gmm: initial model has N = " + std::to_string(options.initial->dim) +
          ", data has D = " + std::to_string(data.dim));
  }

  // Data covariance (+ reg_covar I): the covariance a re-seeded component starts from.
  std::vector<double> data_mean(static_cast<size_t>(data.dim), 0.0);
  for (int64_t i = 0; i < data.n; ++i)
    for (int64_t j = 0; j < data.dim; ++j) data_mean[j] += data.row(i)[j];
  for (double& m : data_mean) m /= static_cast<double>(data.n);
  std::vector<int64_t> all_rows(static_cast<size_t>(data.n));
  for (int64_t i = 0; i < data.n; ++i) all_rows[i] = i;
  std::vector<double> data_covariance(static_cast<size_t>(data.dim * data.dim));
  weighted_scatter(data, all_rows, std::vector<double>(all_rows.size(), 1.0), data_mean.data(),
                   data_covariance.data());
  for (double& c : data_covariance) c /= static_cast<double>(data.n);
  add_to_diagonal(data_covariance.data(), data.dim, options.reg_covar);

  Rng rng(options.seed);
  Gmm model = options.initial ? *options.initial : kmeans_init(data, options, rng);
  GmmFitResult result;
  std::vector<double> resp;
  for (int iteration = 1; iteration <= options.max_iterations; ++iteration) {
    if (iteration > 1) m_step(data, resp, options, model);
    auto [factors, restarts] = reseed_collapsed(data, data_covariance, options, rng, model);
    // E-step: responsibilities = softmax over components of the log joint, row by row.
    resp = model.log_joint(data.x, factors);
    std::vector<double> row_log_p(static_cast<size_t>(data.n));
    // Threads: oneTBB over rows; each row is written by one chunk.
    parallel_for(data.n, 1024, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double* r = resp.data() + i * K;
        row_log_p[i] = log_sum_exp(r, K);
        for (int64_t k = 0; k < K; ++k) r[k] = std::exp(r[k] - row_log_p[i]);
      }
    });
    double total = 0.0;
    for (double v : row_log_p) total += v;
    GmmFitProgress progress;
    progress.iteration = iteration;
    progress.log_likelihood = total / static_cast<double>(data.n);
    progress.change = result.log_likelihood.empty()
                          ? 0.0
                          : progress.log_likelihood - result.log_likelihood.back();
    progress.restarts = restarts;
    result.log_likelihood.push_back(progress.log_likelihood);
    result.iterations = iteration;
    result.restarts += restarts;
    if (options.on_iteration) options.on_iteration(progress);
    if (iteration > 1 && restarts == 0 && std::abs(progress.change) < options.tolerance) {
      result.converged = true;
      break;
    }
  }
  model.round_to_float32();
  model.validate("fit_gmm (fitted model rounded to float32)");
  result.gmm = std::move(model);
  return result;
}

}  // namespace dpm::datasets
