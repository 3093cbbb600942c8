#include <lapacke.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numbers>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/gmm.hpp"
#include "datasets/gmm_fit.hpp"

#include <nlohmann/json.hpp>

using dpm::Rng;
using dpm::Tensor;
using dpm::datasets::fit_gmm;
using dpm::datasets::Gmm;
using dpm::datasets::GmmFitOptions;
using dpm::datasets::GmmFitProgress;
using dpm::datasets::Normalization;

namespace {

// Sample mean [N] and covariance [N, N] of the rows, plus the standard error of each covariance
// entry estimated from the spread of the products (x_i - m)(x_j - m) (valid for any distribution).
struct Moments {
  std::vector<double> mean, cov, cov_se, mean_se;
};

Moments moments(const Tensor& x) {
  const int64_t n = x.size(0), d = x.size(1);
  const float* p = x.data();
  Moments m;
  m.mean.assign(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) m.mean[j] += p[i * d + j];
  for (double& v : m.mean) v /= static_cast<double>(n);
  std::vector<double> sq(static_cast<size_t>(d * d), 0.0);
  m.cov.assign(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) {
        double prod = (p[i * d + a] - m.mean[a]) * (p[i * d + b] - m.mean[b]);
        m.cov[a * d + b] += prod;
        sq[a * d + b] += prod * prod;
      }
  m.cov_se.resize(m.cov.size());
  for (size_t e = 0; e < m.cov.size(); ++e) {
    m.cov[e] /= static_cast<double>(n);
    double var = sq[e] / static_cast<double>(n) - m.cov[e] * m.cov[e];
    m.cov_se[e] = std::sqrt(var / static_cast<double>(n));
  }
  for (int64_t j = 0; j < d; ++j)
    m.mean_se.push_back(std::sqrt(m.cov[j * d + j] / static_cast<double>(n)));
  return m;
}

// log N(x; mu, C) by an unblocked Cholesky and forward substitution: the reference for the
// blocked, BLAS-based evaluation.
double naive_log_normal(const double* x, const double* mu, const double* c, int64_t n) {
  std::vector<double> l(static_cast<size_t>(n * n), 0.0), z(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = c[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i == j ? std::sqrt(s) : s / l[j * n + j];
    }
  double quad = 0.0, log_det = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double s = x[i] - mu[i];
    for (int64_t k = 0; k < i; ++k) s -= l[i * n + k] * z[k];
    z[i] = s / l[i * n + i];
    quad += z[i] * z[i];
    log_det += 2.0 * std::log(l[i * n + i]);
  }
  return -0.5 * (static_cast<double>(n) * std::log(2.0 * std::numbers::pi) + log_det + quad);
}

double naive_log_density(const Gmm& g, const double* x) {
  std::vector<double> terms;
  double total = 0.0;
  for (double w : g.weights) total += w;
  for (int64_t k = 0; k < g.components; ++k)
    terms.push_back(std::log(g.weights[k] / total) +
                    naive_log_normal(x, g.means.data() + k * g.dim,
                                     g.covariances.data() + k * g.dim * g.dim, g.dim));
  double top = *std::max_element(terms.begin(), terms.end()), s = 0.0;
  for (double t : terms) s += std::exp(t - top);
  return top + std::log(s);
}

Gmm make_gmm(int64_t dim, std::vector<double> weights, std::vector<double> means,
             std::vector<double> covariances) {
  Gmm g;
  g.dim = dim;
  g.components = static_cast<int64_t>(weights.size());
  g.weights = std::move(weights);
  g.means = std::move(means);
  g.covariances = std::move(covariances);
  g.round_to_float32();
  g.validate("test GMM");
  return g;
}

// A tiny, clearly multimodal 2-D mixture.
Gmm tiny_gmm() {
  return make_gmm(2, {0.2, 0.5, 0.3}, {-2.0, 0.0, 2.0, 1.0, 0.0, -2.0},
                  {1.0, 0.5, 0.5, 1.0, 0.5, -0.2, -0.2, 0.8, 0.3, 0.0, 0.0, 0.6});
}

// The two-component 2-D mixture the EM tests recover.
Gmm two_component_gmm() {
  return make_gmm(2, {0.3, 0.7}, {-2.0, 0.0, 2.0, 1.0}, {1.0, 0.5, 0.5, 1.0, 0.5, -0.2, -0.2, 0.8});
}

std::vector<double> eigenvalues(const double* c, int64_t n) {
  std::vector<double> a(c, c + n * n), w(static_cast<size_t>(n));
  REQUIRE(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', static_cast<lapack_int>(n), a.data(),
                         static_cast<lapack_int>(n), w.data()) == 0);
  return w;  // ascending
}

// NMSE = E / P over rows, with the delta-method standard error of the ratio.
struct NmseEstimate {
  double value, se;
};

NmseEstimate nmse_with_se(const Tensor& x, const Tensor& x_hat) {
  const int64_t n = x.size(0), d = x.size(1);
  std::vector<double> e(static_cast<size_t>(n), 0.0), p(static_cast<size_t>(n), 0.0);
  double err = 0.0, power = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      double xv = x.data()[i * d + j], diff = xv - x_hat.data()[i * d + j];
      e[i] += diff * diff;
      p[i] += xv * xv;
    }
    err += e[i];
    power += p[i];
  }
  double r = err / power, var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (e[i] - r * p[i]) * (e[i] - r * p[i]);
  double se = std::sqrt(var) / power;  // sqrt(n var_i / n^2) / mean(p) = sqrt(sum) / sum(p)
  return {r, se};
}

Tensor add_noise(const Tensor& x, double sigma2, Rng& rng) {
  Tensor y = x.clone();
  y.add_(dpm::randn(x.shape(), rng), static_cast<float>(std::sqrt(sigma2)));
  return y;
}

// The benchmark setting of docs/protocol.md, The GMM protocol: the paper's GMM, normalised on
// training samples, and a normalised test set.
struct PaperSetup {
  Gmm gmm;
  Tensor test;
};

PaperSetup paper_setup(uint64_t seed, int64_t train, int64_t test) {
  Rng rng(seed);
  Gmm raw = dpm::datasets::make_random_gmm(rng);
  Normalization norm = Normalization::fit(raw.sample(train, rng));
  return {norm.apply(raw), norm.apply(raw.sample(test, rng))};
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("dpm_test_gmm_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("samples have the mixture's mean, covariance and weights, sampling is reproducible",
          "[gmm]") {
  Rng rng(11);
  Gmm g = dpm::datasets::make_random_gmm(rng, 3, 4);
  const int64_t n = 200000;
  std::vector<int> labels;
  Tensor x = g.sample(n, rng, &labels);
  REQUIRE(x.shape() == dpm::Shape{n, 3});
  Moments m = moments(x);
  std::vector<double> mean = g.mixture_mean(), cov = g.mixture_covariance();
  for (int j = 0; j < 3; ++j) CHECK(std::abs(m.mean[j] - mean[j]) < 5 * m.mean_se[j]);
  for (int e = 0; e < 9; ++e) CHECK(std::abs(m.cov[e] - cov[e]) < 5 * m.cov_se[e]);
  std::vector<double> counts(4, 0.0);
  for (int l : labels) counts[static_cast<size_t>(l)] += 1.0;
  for (int k = 0; k < 4; ++k) {
    double p = g.weights[k], se = std::sqrt(p * (1 - p) / n);
    CHECK(std::abs(counts[k] / n - p) < 5 * se);
  }

  // Same seed, same samples, whatever the thread count; the stream advances between calls.
  Rng a(5), b(5);
  dpm::set_num_threads(1);
  Tensor one = g.sample(5000, a);
  dpm::set_num_threads(2);
  Tensor two = g.sample(5000, b);
  dpm::set_num_threads(0);
  CHECK(one.to_vector() == two.to_vector());
  CHECK(g.sample(5000, a).to_vector() != one.to_vector());
  CHECK_THROWS_AS(g.sample(-1, a), std::invalid_argument);
}

TEST_CASE("random GMM covariances have the documented spectra", "[gmm]") {
  Rng rng(3);
  Gmm paper = dpm::datasets::make_random_gmm(rng, 16, 4);
  Gmm literal =
      dpm::datasets::make_random_gmm(rng, 16, 4, dpm::datasets::RandomCovariance::uniform_spectrum);
  for (int64_t k = 0; k < 4; ++k) {
    // paper: U diag(u) U^T + (U 1)(U 1)^T: one eigenvalue >= N, the others below ~1 + u_max.
    std::vector<double> ev = eigenvalues(paper.covariances.data() + k * 256, 16);
    CHECK(ev.front() > 0.0);
    CHECK(ev.back() >= 16.0);
    CHECK(ev[14] <= 1.0 + 1e-5);  // interlacing: below the largest u
    std::vector<double> lit = eigenvalues(literal.covariances.data() + k * 256, 16);
    CHECK(lit.front() >= 1.0 - 1e-5);
    CHECK(lit.back() <= 2.0 + 1e-5);
  }
  double sum = 0.0;
  for (double w : paper.weights) sum += w;
  CHECK(sum == Approx(1.0).epsilon(1e-6));
  for (double v : paper.covariances) CHECK(v == static_cast<double>(static_cast<float>(v)));
}

TEST_CASE("rounding to float32 keeps nearly singular covariances positive definite", "[gmm]") {
  // C = v v^T + 1e-9 I: positive definite, but rounding its O(1) entries (error ~6e-8) does not
  // keep the 1e-9 eigenvalues positive.
  Rng rng(13);
  const int64_t n = 8;
  std::vector<double> v(n), c(n * n);
  for (double& x : v) x = rng.normal();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * n + j] = v[i] * v[j] + (i == j ? 1e-9 : 0.0);
  Gmm g;
  g.dim = n;
  g.components = 2;
  g.weights = {0.5, 0.5};
  g.means.assign(2 * n, 0.0);
  g.covariances = c;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) g.covariances.push_back(i == j ? 2.0 : 0.1);
  const std::vector<double> exact = g.covariances;
  CHECK(g.round_to_float32() == 1);
  g.validate("jittered GMM");
  double max_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) max_diag = std::max(max_diag, exact[i * n + i]);
  for (size_t e = 0; e < exact.size(); ++e) {
    CHECK(g.covariances[e] == static_cast<double>(static_cast<float>(g.covariances[e])));
    CHECK(std::abs(g.covariances[e] - exact[e]) <= 4.0 * n * 1.2e-7 * max_diag);
  }
  // A covariance that is not positive definite to begin with is left for validate() to reject.
  g.covariances[0] = -1.0;
  g.round_to_float32();
  CHECK_THROWS_WITH(g.validate("bad GMM"),
                    Catch::Contains("bad GMM") && Catch::Contains("component 0"));
}

TEST_CASE("normalisation gives unit average power and maps the GMM onto the normalised data",
          "[gmm]") {
  Rng rng(21);
  Gmm raw = dpm::datasets::make_random_gmm(rng, 6, 5);
  for (double& v : raw.means) v += 1.5;  // a non-zero mean and a non-unit scale to undo
  for (double& v : raw.covariances) v *= 4.0;
  const int64_t n = 100000;
  Tensor train = raw.sample(n, rng);
  Normalization norm = Normalization::fit(train);
  Tensor xn = norm.apply(train);
  Moments m = moments(xn);
  double power = 0.0;
  for (int j = 0; j < 6; ++j) {
    CHECK(std::abs(m.mean[j]) < 1e-6);
    power += m.cov[j * 6 + j] + m.mean[j] * m.mean[j];
  }
  CHECK(power / 6 == Approx(1.0).epsilon(1e-6));

  // The mapped GMM is the law of the normalised data: its exact moments match the normalised
  // training data within the sampling error of the fitted (m, c), and its samples match too.
  Gmm mapped = norm.apply(raw);
  std::vector<double> mean = mapped.mixture_mean(), cov = mapped.mixture_covariance();
  for (int j = 0; j < 6; ++j) CHECK(std::abs(mean[j]) < 5 * m.mean_se[j]);
  for (int e = 0; e < 36; ++e) CHECK(std::abs(cov[e] - m.cov[e]) < 5 * m.cov_se[e]);
  Moments s = moments(mapped.sample(n, rng));
  for (int j = 0; j < 6; ++j)
    CHECK(std::abs(s.mean[j] - m.mean[j]) < 5 * std::hypot(s.mean_se[j], m.mean_se[j]));
  for (int e = 0; e < 36; ++e)
    CHECK(std::abs(s.cov[e] - m.cov[e]) < 5 * std::hypot(s.cov_se[e], m.cov_se[e]));
  CHECK_THROWS_WITH(norm.apply(Tensor::zeros({2, 5})), Catch::Contains("[n, 6]"));
}

TEST_CASE("log_density matches a naive per-component evaluation and integrates to one", "[gmm]") {
  Rng rng(31);
  Gmm g = dpm::datasets::make_random_gmm(rng, 5, 7);
  Tensor x = g.sample(40, rng);
  for (int j = 0; j < 5; ++j) x.at({0, j}) = 30.0f;  // far in the tail: log-sum-exp must hold
  std::vector<double> lp = g.log_density(x);
  double naive_sum = 0.0;
  for (int64_t i = 0; i < 40; ++i) {
    std::vector<double> row(x.data() + i * 5, x.data() + i * 5 + 5);
    double naive = naive_log_density(g, row.data());
    naive_sum += naive;
    CHECK(lp[static_cast<size_t>(i)] == Approx(naive).epsilon(1e-11));
  }
  CHECK(g.nll_per_dim(x) == Approx(-naive_sum / 40 / 5).epsilon(1e-11));

  // 1-D two-mode mixture: trapezoid rule on a fine grid of float points.
  Gmm one_d = make_gmm(1, {0.3, 0.7}, {-1.5, 2.0}, {0.2, 1.0});
  const int64_t points = 26001;
  Tensor grid = Tensor::empty({points, 1});
  for (int64_t i = 0; i < points; ++i) grid.data()[i] = static_cast<float>(-12.0 + 0.001 * i);
  std::vector<double> p = one_d.log_density(grid);
  double integral = 0.0;
  for (int64_t i = 0; i + 1 < points; ++i)
    integral += 0.5 * (std::exp(p[i]) + std::exp(p[i + 1])) *
                (static_cast<double>(grid.data()[i + 1]) - grid.data()[i]);
  CHECK(integral == Approx(1.0).margin(1e-6));
}

TEST_CASE("CME matches a Monte-Carlo posterior mean on a tiny GMM", "[gmm]") {
  Gmm g = tiny_gmm();
  const double sigma2 = 0.5;
  Rng rng(41);
  const int64_t m = 400000;
  Tensor prior = g.sample(m, rng);
  const std::vector<double> ys = {0.0, 0.0, 1.5, 0.5, -1.0, -1.5, 3.0, 2.0, -2.5, 1.0};
  std::vector<double> cme = g.cme(ys, g.factorize(sigma2));
  for (size_t q = 0; q < ys.size() / 2; ++q) {
    // Self-normalised importance sampling with the likelihood N(y; x, sigma2 I) as weight.
    double sw = 0.0, est[2] = {0.0, 0.0};
    std::vector<double> w(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      double d0 = ys[2 * q] - prior.data()[2 * i], d1 = ys[2 * q + 1] - prior.data()[2 * i + 1];
      w[i] = std::exp(-(d0 * d0 + d1 * d1) / (2 * sigma2));
      sw += w[i];
      for (int j = 0; j < 2; ++j) est[j] += w[i] * prior.data()[2 * i + j];
    }
    for (int j = 0; j < 2; ++j) {
      est[j] /= sw;
      double var = 0.0;
      for (int64_t i = 0; i < m; ++i) {
        double r = prior.data()[2 * i + j] - est[j];
        var += w[i] * w[i] * r * r;
      }
      double se = std::sqrt(var) / sw;
      INFO("y #" << q << " coordinate " << j << ": CME " << cme[2 * q + j] << ", Monte Carlo "
                 << est[j] << " +- " << se);
      CHECK(std::abs(cme[2 * q + j] - est[j]) < 5 * se + 1e-6);
    }
  }
  // The Tensor interface is the same computation, rounded to float32.
  Tensor y = Tensor::from_vector({5, 2}, std::vector<float>(ys.begin(), ys.end()));
  Tensor t = g.cme(y, sigma2);
  for (size_t e = 0; e < ys.size(); ++e) CHECK(t.data()[e] == Approx(cme[e]).margin(1e-6));
  CHECK_THROWS_WITH(g.cme(Tensor::zeros({4, 3}), 1.0), Catch::Contains("Gmm::cme"));

  // Blocks of rows are fixed, so the estimate does not depend on the thread count.
  Tensor many = add_noise(g.sample(3000, rng), sigma2, rng);
  dpm::set_num_threads(1);
  std::vector<float> serial = g.cme(many, sigma2).to_vector();
  dpm::set_num_threads(2);
  CHECK(g.cme(many, sigma2).to_vector() == serial);
  dpm::set_num_threads(0);
  CHECK_THROWS_AS(g.cme(y, -1.0), std::invalid_argument);
}

TEST_CASE("on a single-component GMM the CME equals the LMMSE", "[gmm]") {
  Rng rng(51);
  Gmm g = dpm::datasets::make_random_gmm(rng, 6, 1);
  for (double& v : g.means) v += 0.7;
  std::vector<double> y(6 * 50);
  for (double& v : y) v = 2.0 * rng.normal();
  for (double sigma2 : {1e-3, 0.5, 1.0, 100.0}) {
    std::vector<double> cme = g.cme(y, g.factorize(sigma2)), lmmse = g.lmmse(y, sigma2);
    double worst = 0.0;
    for (size_t e = 0; e < y.size(); ++e) worst = std::max(worst, std::abs(cme[e] - lmmse[e]));
    INFO("sigma2 = " << sigma2);
    CHECK(worst < 1e-10);
  }
  // No noise: the estimate is the observation itself.
  std::vector<double> exact = g.cme(y, g.factorize(0.0));
  for (size_t e = 0; e < y.size(); ++e) CHECK(exact[e] == Approx(y[e]).margin(1e-12));
}

TEST_CASE("SNR, LS and NMSE helpers", "[gmm]") {
  CHECK(dpm::datasets::snr_db_to_sigma2(0.0) == 1.0);
  CHECK(dpm::datasets::snr_db_to_sigma2(10.0) == Approx(0.1).epsilon(1e-15));
  CHECK(dpm::datasets::snr_db_to_sigma2(-20.0) == Approx(100.0).epsilon(1e-15));
  Tensor x = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor x_hat = Tensor::from_vector({2, 2}, {1, 2, 3, 3});
  CHECK(dpm::datasets::nmse(x, x_hat) == Approx(1.0 / 30.0).epsilon(1e-15));
  CHECK(dpm::datasets::ls(x).shares_storage_with(x));
  CHECK_THROWS_WITH(dpm::datasets::nmse(x, Tensor::zeros({4})), Catch::Contains("nmse"));
  CHECK_THROWS_AS(dpm::datasets::nmse(Tensor::zeros({2, 2}), x), std::invalid_argument);
}

// Reference (docs/protocol.md, The GMM protocol): the authors' GMM draw, 10k test samples. Ours is
// another draw of the same construction (RandomCovariance::paper) with 4000 test samples. Measured
// over 8 seeds (100k train, 10k test samples each), CME NMSE mean / std across seeds (the std
// includes each run's Monte-Carlo error, about .0005 .0062 .0027 .0007 .0001 at -20..20 dB):
//   -20 dB .98648/.00036  -10 dB .7036/.0070  0 dB .2697/.0017  10 dB .0708/.00045
//   20 dB .00941/.00005   30 dB .00099/<.00001;  LMMSE at 0 dB .4676/.0027.
// The reference is one such draw + 10k-sample estimate (variance <= std^2); ours is another draw
// (<= std^2) plus our Monte-Carlo error (mc_se, from the per-sample errors by the delta method).
// Tolerance: 4 sqrt(mc_se^2 + 2 std^2).
TEST_CASE("NMSE of CME, LMMSE and LS on the paper's random GMM matches the reference", "[gmm]") {
  struct Row {
    double snr_db, reference, seed_std;
  };
  const Row cme_rows[] = {{-20, 0.986, 0.00036}, {-10, 0.699, 0.0070},  {0, 0.269, 0.0017},
                          {10, 0.0706, 0.00045}, {20, 0.0094, 0.00005}, {30, 0.00099, 0.00001}};
  auto tolerance = [](double mc_se, double seed_std) {
    return 4 * std::sqrt(mc_se * mc_se + 2 * seed_std * seed_std);
  };
  PaperSetup setup = paper_setup(2024, 20000, 4000);
  const Tensor& x = setup.test;
  // LS: NMSE = noise power / signal power = sigma2 in expectation on unit-power data. Relative
  // standard errors: noise power sqrt(2 / (nN)); test-set power (from the per-sample spread) and
  // the fitted c^2 (the same spread over 20k training samples).
  const int64_t n = x.size(0), d = x.size(1);
  std::vector<double> power(static_cast<size_t>(n), 0.0);
  double mean_power = 0.0, var_power = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) power[i] += x.data()[i * d + j] * x.data()[i * d + j];
    mean_power += power[i] / static_cast<double>(n);
  }
  for (double p : power) var_power += (p - mean_power) * (p - mean_power) / static_cast<double>(n);
  const double se_power = std::sqrt(var_power / static_cast<double>(n)) / mean_power;
  const double se_noise = std::sqrt(2.0 / static_cast<double>(n * d));
  const double se_ls =
      std::sqrt(se_noise * se_noise + se_power * se_power * (1.0 + 4000.0 / 20000.0));
  Rng rng(7);
  std::cout << "paper GMM, 4000 test samples: SNR  CME (ref)  LMMSE  LS\n";
  for (const Row& row : cme_rows) {
    double sigma2 = dpm::datasets::snr_db_to_sigma2(row.snr_db);
    Tensor y = add_noise(x, sigma2, rng);
    NmseEstimate cme = nmse_with_se(x, setup.gmm.cme(y, sigma2));
    NmseEstimate lmmse = nmse_with_se(x, setup.gmm.lmmse(y, sigma2));
    double ls = dpm::datasets::nmse(x, dpm::datasets::ls(y));
    std::printf("  %+4.0f dB  %.5f (%.5f)  %.5f  %.5f\n", row.snr_db, cme.value, row.reference,
                lmmse.value, ls);
    INFO("SNR " << row.snr_db << " dB: CME NMSE " << cme.value << " +- " << cme.se
                << " (Monte Carlo), reference " << row.reference);
    CHECK(std::abs(cme.value - row.reference) < tolerance(cme.se, row.seed_std));
    CHECK(cme.value <= lmmse.value);  // the CME is MSE-optimal, on average and here
    if (row.snr_db == 0) {
      INFO("LMMSE at 0 dB: " << lmmse.value << " +- " << lmmse.se << ", reference 0.465");
      CHECK(std::abs(lmmse.value - 0.465) < tolerance(lmmse.se, 0.0027));
    }
    CHECK(std::abs(ls / sigma2 - 1.0) < 4 * se_ls);
  }
}

TEST_CASE("NMSE table on the paper's random GMM, 10k test samples", "[gmm][.slow]") {
  auto start = std::chrono::steady_clock::now();
  PaperSetup setup = paper_setup(2024, 100000, 10000);
  double setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Rng rng(7);
  std::printf(
      "paper GMM (N = 64, K = 128), 10k test samples, seed 2024\n  SNR     CME      LMMSE    LS\n");
  double estimate_seconds = 0.0;
  for (int snr = -20; snr <= 30; snr += 5) {
    double sigma2 = dpm::datasets::snr_db_to_sigma2(snr);
    Tensor y = add_noise(setup.test, sigma2, rng);
    auto t0 = std::chrono::steady_clock::now();
    Tensor cme = setup.gmm.cme(y, sigma2);
    Tensor lmmse = setup.gmm.lmmse(y, sigma2);
    estimate_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double nmse_cme = dpm::datasets::nmse(setup.test, cme);
    std::printf("  %+3d dB  %.5f  %.5f  %.5f\n", snr, nmse_cme,
                dpm::datasets::nmse(setup.test, lmmse),
                dpm::datasets::nmse(setup.test, dpm::datasets::ls(y)));
    CHECK(nmse_cme < 1.0);
  }
  std::printf("  setup (GMM, 110k samples, normalisation) %.2f s; CME + LMMSE at 11 SNRs %.2f s\n",
              setup_seconds, estimate_seconds);
}

TEST_CASE("EM recovers a known two-component mixture", "[gmm][fit]") {
  Gmm truth = two_component_gmm();
  Rng rng(61);
  const int64_t n = 5000;
  Tensor x = truth.sample(n, rng);
  GmmFitOptions options;
  options.components = 2;
  options.tolerance = 1e-8;
  options.max_iterations = 300;
  options.seed = 1;
  auto result = fit_gmm(x, options);
  CHECK(result.converged);
  CHECK(result.restarts == 0);
  const Gmm& fit = result.gmm;
  REQUIRE(fit.components == 2);
  // Match components by the x-coordinate of the mean (truth: -2 and 2).
  int first = fit.means[0] < fit.means[2] ? 0 : 1;
  for (int k = 0; k < 2; ++k) {
    int f = k == 0 ? first : 1 - first;
    double w = truth.weights[k], nk = n * w;
    INFO("component " << k);
    CHECK(std::abs(fit.weights[f] - w) < 5 * std::sqrt(w * (1 - w) / n));
    const double* c = truth.covariances.data() + 4 * k;
    for (int j = 0; j < 2; ++j)
      CHECK(std::abs(fit.means[2 * f + j] - truth.means[2 * k + j]) < 5 * std::sqrt(c[3 * j] / nk));
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        double se = std::sqrt((c[3 * a] * c[3 * b] + c[2 * a + b] * c[2 * a + b]) / nk);
        CHECK(std::abs(fit.covariances[4 * f + 2 * a + b] - c[2 * a + b]) < 5 * se);
      }
  }
  // The fitted model's log-likelihood is at least the truth's (it is the maximiser).
  double fitted = -fit.nll_per_dim(x) * 2, true_ll = -truth.nll_per_dim(x) * 2;
  CHECK(fitted >= true_ll - 1e-6);
  CHECK(result.log_likelihood.back() == Approx(fitted).epsilon(1e-6));
}

TEST_CASE("EM log-likelihood never decreases and is reported every iteration", "[gmm][fit]") {
  Rng rng(71);
  Tensor x = two_component_gmm().sample(5000, rng);
  GmmFitOptions options;
  options.components = 3;   // one more than the truth: a slow, non-trivial ascent
  options.reg_covar = 0.0;  // exact EM: the likelihood is monotone (a floor would perturb it)
  options.tolerance = 0.0;
  options.max_iterations = 40;
  options.kmeans_iterations = 0;
  options.seed = 3;
  std::vector<GmmFitProgress> reports;
  options.on_iteration = [&](const GmmFitProgress& p) { reports.push_back(p); };
  auto result = fit_gmm(x, options);
  REQUIRE(result.iterations == 40);
  REQUIRE(reports.size() == 40);
  CHECK(result.restarts == 0);
  // The work counted: the E-step's K n D^2, and the M-step's D^2 for each of at most K n
  // scattered rows, except after the last iteration (no M-step).
  const double e_step = 3.0 * 5000 * 2 * 2;
  for (size_t t = 0; t < reports.size(); ++t) {
    CHECK(reports[t].seconds > 0);
    if (t + 1 == reports.size()) {
      CHECK(reports[t].flops == e_step);
    } else {
      CHECK(reports[t].flops > e_step);
      CHECK(reports[t].flops <= 2 * e_step);
    }
  }
  for (size_t t = 0; t < reports.size(); ++t) {
    CHECK(reports[t].iteration == static_cast<int>(t + 1));
    CHECK(reports[t].log_likelihood == result.log_likelihood[t]);
    if (t == 0) continue;
    INFO("iteration " << t + 1);
    CHECK(reports[t].change == result.log_likelihood[t] - result.log_likelihood[t - 1]);
    CHECK(result.log_likelihood[t] >= result.log_likelihood[t - 1] - 1e-12);
  }
  CHECK(result.log_likelihood.back() > result.log_likelihood.front());
}

TEST_CASE("a collapsing component is re-seeded and EM still converges", "[gmm][fit]") {
  Gmm truth = two_component_gmm();
  Rng rng(81);
  Tensor x = truth.sample(5000, rng);
  // Start with one component far from every point: it receives no responsibility, its weight
  // collapses to zero after the first M-step, and it must be re-seeded at a data point.
  Gmm start =
      make_gmm(2, {0.5, 0.5}, {0.5, 0.5, 1000.0, 1000.0}, {4.0, 0.0, 0.0, 4.0, 1.0, 0.0, 0.0, 1.0});
  GmmFitOptions options;
  options.initial = &start;
  options.tolerance = 1e-8;
  options.max_iterations = 300;
  std::vector<GmmFitProgress> reports;
  options.on_iteration = [&](const GmmFitProgress& p) { reports.push_back(p); };
  auto result = fit_gmm(x, options);
  CHECK(result.restarts >= 1);
  REQUIRE(reports.size() >= 2);
  CHECK(reports[1].restarts == 1);
  CHECK(result.converged);
  GmmFitOptions fresh;
  fresh.components = 2;
  fresh.tolerance = 1e-8;
  fresh.max_iterations = 300;
  auto reference = fit_gmm(x, fresh);
  CHECK(result.log_likelihood.back() == Approx(reference.log_likelihood.back()).epsilon(1e-6));
  for (double w : result.gmm.weights) CHECK(w > 0.25);
  CHECK_THROWS_WITH(fit_gmm(x.narrow(0, 0, 1), fresh), Catch::Contains("n >= K"));
}

TEST_CASE("a component that collapses every time it is re-seeded does not keep EM from stopping",
          "[gmm][fit]") {
  // Two tight, equal clusters and K = 3 with min_weight 0.4: the third component can never hold
  // 40% of the data, so it is re-seeded (with the broad data covariance) in every iteration.
  const Gmm truth =
      make_gmm(2, {0.5, 0.5}, {-5.0, 0.0, 5.0, 0.0}, {0.1, 0.0, 0.0, 0.1, 0.1, 0.0, 0.0, 0.1});
  Rng rng(85);
  const Tensor x = truth.sample(2000, rng);
  GmmFitOptions options;
  options.components = 3;
  options.min_weight = 0.4;
  options.tolerance = 1e-2;
  options.max_iterations = 60;
  std::vector<GmmFitProgress> reports;
  options.on_iteration = [&](const GmmFitProgress& p) { reports.push_back(p); };
  std::vector<dpm::datasets::GmmFitState> states;
  options.on_state = [&](const dpm::datasets::GmmFitState& s) { states.push_back(s); };
  const auto result = fit_gmm(x, options);
  REQUIRE(reports.size() >= 3);
  std::string restarts;
  for (const GmmFitProgress& p : reports) restarts += std::to_string(p.restarts) + " ";
  INFO("re-seeded per iteration: " << restarts);
  CHECK(reports.back().restarts == 1);
  CHECK(reports[reports.size() - 2].restarts == 1);
  CHECK(result.converged);
  CHECK(result.iterations < 60);
  REQUIRE_FALSE(states.empty());
  CHECK(states.back().last_reseeded.size() == 1);
  // Saved and read back, the re-seeded component comes too, so a resumed fit stops as this one.
  const std::string path = temp_path("persistent_state.safetensors");
  dpm::datasets::save_gmm_fit_state(states.back(), nlohmann::json::object(), path);
  CHECK(dpm::datasets::load_gmm_fit_state(path).state.last_reseeded == states.back().last_reseeded);
  GmmFitOptions resumed = options;
  resumed.on_state = nullptr;
  resumed.on_iteration = nullptr;
  resumed.resume = &states.back();
  const auto rest = fit_gmm(x, resumed);
  CHECK(rest.converged);
  CHECK(rest.iterations == result.iterations);
  CHECK(rest.gmm.means == result.gmm.means);
  std::filesystem::remove(path);
}

TEST_CASE("a fit resumed from its saved state is bit for bit the uninterrupted fit", "[gmm][fit]") {
  Gmm truth = two_component_gmm();
  Rng rng(83);
  Tensor x = truth.sample(3000, rng);
  // One component far from every point collapses after the first M-step and is re-seeded at a
  // random data point in the second iteration: a resume from the first state must restore the
  // Rng to draw the same point.
  Gmm start = make_gmm(2, {0.3, 0.3, 0.4}, {0.5, 0.5, 1000.0, 1000.0, -1.0, 0.0},
                       {4.0, 0.0, 0.0, 4.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.5, 0.5, 2.0});
  GmmFitOptions options;
  options.initial = &start;
  options.tolerance = 0.0;
  options.max_iterations = 12;
  options.seed = 5;
  std::vector<dpm::datasets::GmmFitState> states;
  options.on_state = [&](const dpm::datasets::GmmFitState& s) { states.push_back(s); };
  const auto whole = fit_gmm(x, options);
  REQUIRE(states.size() == 11);  // after every iteration but the last
  CHECK(whole.restarts > 0);

  // Through the file: the doubles come back exactly from their three float32 parts.
  const std::string path = temp_path("fit_state.safetensors");
  const nlohmann::json run = {{"data", "two components"}, {"components", 4}};
  dpm::datasets::save_gmm_fit_state(states[4], run, path);
  const dpm::datasets::SavedGmmFitState saved = dpm::datasets::load_gmm_fit_state(path);
  CHECK(saved.run == run);
  CHECK(saved.state.model.means == states[4].model.means);
  CHECK(saved.state.model.covariances == states[4].model.covariances);
  CHECK(saved.state.model.weights == states[4].model.weights);
  CHECK(saved.state.rng == states[4].rng);
  CHECK(saved.state.log_likelihood == states[4].log_likelihood);
  CHECK(saved.state.iterations == 5);
  CHECK(saved.state.restarts == states[4].restarts);
  // The float32 part alone is the float32 model, not the double one: the split matters.
  const dpm::SafeTensors file = dpm::read_safetensors(path);
  CHECK(file.get("means.hi").to_vector()[0] == static_cast<float>(states[4].model.means[0]));
  CHECK(file.get("means.mid").to_vector()[0] != 0.0f);

  GmmFitOptions resumed = options;
  resumed.on_state = nullptr;
  const dpm::datasets::GmmFitState* first = &states[0];
  for (const dpm::datasets::GmmFitState* from : {first, &saved.state}) {
    INFO("resumed after iteration " << from->iterations);
    resumed.resume = from;
    const auto rest = fit_gmm(x, resumed);
    CHECK(rest.iterations == 12);
    CHECK(rest.log_likelihood == whole.log_likelihood);
    CHECK(rest.restarts == whole.restarts);
    CHECK(rest.gmm.means == whole.gmm.means);
    CHECK(rest.gmm.covariances == whole.gmm.covariances);
    CHECK(rest.gmm.weights == whole.gmm.weights);
  }

  resumed.max_iterations = 5;
  CHECK_THROWS_WITH(fit_gmm(x, resumed), Catch::Contains("nothing is left"));
  std::filesystem::remove(path);
}

TEST_CASE("a fit state file with missing or inconsistent parts is rejected naming the file",
          "[gmm][io]") {
  Rng rng(93);
  dpm::datasets::GmmFitState state;
  state.model = dpm::datasets::make_random_gmm(rng, 4, 2);
  state.rng = Rng(1).state();
  state.log_likelihood = {-3.0, -2.5};
  state.iterations = 2;
  const std::string path = temp_path("state.safetensors");
  dpm::datasets::save_gmm_fit_state(state, {{"k", 2}}, path);
  dpm::SafeTensors file = dpm::read_safetensors(path);

  auto rewritten = [&](auto change) {
    dpm::NamedTensors tensors = file.tensors;
    std::map<std::string, std::string> metadata = file.metadata;
    change(tensors, metadata);
    const std::string bad = temp_path("bad_state.safetensors");
    dpm::write_safetensors(bad, tensors, metadata);
    return bad;
  };
  using Tensors = dpm::NamedTensors;
  using Meta = std::map<std::string, std::string>;
  const std::string no_lo = rewritten([](Tensors& t, Meta&) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& e) { return e.first == "means.lo"; }),
            t.end());
  });
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(no_lo),
                    Catch::Contains(no_lo) && Catch::Contains("means.lo"));
  const std::string short_history = rewritten([](Tensors&, Meta& m) {
    m["state"] = R"({"rng":["1","2","3","4","5","6"],"log_likelihood":[-3],"iterations":2,)"
                 R"("restarts":0})";
  });
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(short_history),
                    Catch::Contains(short_history) && Catch::Contains("log-likelihoods"));
  const std::string bad_rng = rewritten([](Tensors&, Meta& m) {
    m["state"] = R"({"rng":["1","x"],"log_likelihood":[-3],"iterations":1,"restarts":0})";
  });
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(bad_rng),
                    Catch::Contains(bad_rng) && Catch::Contains("rng"));
  const std::string foreign = rewritten([](Tensors&, Meta& m) { m["format"] = "dpmlab.gmm"; });
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(foreign),
                    Catch::Contains(foreign) && Catch::Contains("format"));
  const std::string shapes = rewritten([](Tensors& t, Meta&) {
    for (auto& [name, tensor] : t)
      if (name == "covariances.mid") tensor = Tensor::zeros({2, 4, 3});
  });
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(shapes),
                    Catch::Contains(shapes) && Catch::Contains("covariances.mid"));
  CHECK_THROWS_WITH(dpm::datasets::load_gmm_fit_state(temp_path("absent.safetensors")),
                    Catch::Contains("absent.safetensors"));
}

TEST_CASE("GMM save/load round-trips exactly and rejects corrupt files", "[gmm][io]") {
  Rng rng(91);
  Gmm g = dpm::datasets::make_random_gmm(rng, 8, 3);
  const std::string path = temp_path("roundtrip.safetensors");
  dpm::datasets::save_gmm(g, path);
  Gmm back = dpm::datasets::load_gmm(path);
  CHECK(back.dim == 8);
  CHECK(back.components == 3);
  CHECK(back.weights == g.weights);
  CHECK(back.means == g.means);
  CHECK(back.covariances == g.covariances);

  // A truncated file.
  const std::string torn = temp_path("torn.safetensors");
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(torn, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(torn), Catch::Contains(torn));

  // Well-formed files with invalid GMMs: the error names the file and the field.
  auto tensor = [](const std::vector<double>& v, dpm::Shape shape) {
    return Tensor::from_vector(shape, std::vector<float>(v.begin(), v.end()));
  };
  const std::string bad = temp_path("bad.safetensors");
  const std::map<std::string, std::string> meta = {{"format", "dpmlab.gmm"}};
  std::vector<double> bad_weights = g.weights;
  bad_weights[0] += 0.1;
  dpm::write_safetensors(bad,
                         {{"weights", tensor(bad_weights, {3})},
                          {"means", tensor(g.means, {3, 8})},
                          {"covariances", tensor(g.covariances, {3, 8, 8})}},
                         meta);
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(bad),
                    Catch::Contains(bad) && Catch::Contains("weights"));
  std::vector<double> asymmetric = g.covariances;
  asymmetric[1] += 0.5;
  dpm::write_safetensors(bad,
                         {{"weights", tensor(g.weights, {3})},
                          {"means", tensor(g.means, {3, 8})},
                          {"covariances", tensor(asymmetric, {3, 8, 8})}},
                         meta);
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(bad),
                    Catch::Contains(bad) && Catch::Contains("covariances"));
  std::vector<double> indefinite = g.covariances;
  indefinite[0] = -1.0;
  dpm::write_safetensors(bad,
                         {{"weights", tensor(g.weights, {3})},
                          {"means", tensor(g.means, {3, 8})},
                          {"covariances", tensor(indefinite, {3, 8, 8})}},
                         meta);
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(bad),
                    Catch::Contains(bad) && Catch::Contains("positive definite"));
  dpm::write_safetensors(bad,
                         {{"weights", tensor(g.weights, {3})},
                          {"means", tensor(g.means, {3, 8})},
                          {"covariances", tensor(g.covariances, {3, 8, 8, 1})}},
                         meta);
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(bad),
                    Catch::Contains(bad) && Catch::Contains("covariances"));
  dpm::write_safetensors(bad, {{"weights", tensor(g.weights, {3})}}, meta);
  CHECK_THROWS_WITH(dpm::datasets::load_gmm(bad), Catch::Contains(bad));
  for (const std::string& p : {path, torn, bad}) std::filesystem::remove(p);
}
