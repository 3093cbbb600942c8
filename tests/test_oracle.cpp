#include <lapacke.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/dense.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/schedule.hpp"
#include "oracle_fixtures.hpp"

using dpm::Rng;
using dpm::datasets::Gmm;
using dpm::diffusion::DoubleBatch;
using dpm::diffusion::GmmOracle;
using dpm::diffusion::Schedule;
using dpm::testing::normal_rows;
using dpm::testing::random_mixture;
using dpm::testing::random_spd;

namespace {

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Fourth-order central difference of a row-wise function f: R^N -> R^M at every row of x, along
// every coordinate: out [rows, M, N] (d f_m / d x_j). Truncation O(h^4), rounding O(eps / h).
template <typename F>
std::vector<double> finite_difference(const F& f, const std::vector<double>& x, int64_t n,
                                      int64_t m, double h) {
  const int64_t rows = static_cast<int64_t>(x.size()) / n;
  std::vector<double> out(static_cast<size_t>(rows * m * n));
  for (int64_t j = 0; j < n; ++j) {
    std::vector<std::vector<double>> values;
    for (double step : {-2 * h, -h, h, 2 * h}) {
      std::vector<double> shifted = x;
      for (int64_t i = 0; i < rows; ++i) shifted[i * n + j] += step;
      values.push_back(f(shifted));
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t a = 0; a < m; ++a) {
        const size_t e = static_cast<size_t>(i * m + a);
        out[(i * m + a) * n + j] =
            (values[0][e] - 8 * values[1][e] + 8 * values[2][e] - values[3][e]) / (12 * h);
      }
  }
  return out;
}

// Eigenvalues of a symmetric matrix by cyclic Jacobi rotations: an eigen-solver independent of
// LAPACK, the reference for the oracle's ||J_t||.
std::vector<double> jacobi_eigenvalues(std::vector<double> a, int64_t n) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-30) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        if (a[p * n + q] == 0.0) continue;
        double theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
        double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < n; ++k) {  // columns p, q
          double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int64_t k = 0; k < n; ++k) {  // rows p, q
          double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
  }
  std::vector<double> w;
  for (int64_t i = 0; i < n; ++i) w.push_back(a[i * n + i]);
  std::sort(w.begin(), w.end());
  return w;
}

}  // namespace

TEST_CASE("oracle eps* on a single Gaussian equals sqrt(1 - abar) S^-1 (x - sqrt(abar) mu)",
          "[oracle]") {
  Rng rng(1);
  const int64_t n = 8, rows = 40;
  Gmm g;
  g.dim = n;
  g.components = 1;
  g.weights = {1.0};
  g.means = normal_rows(rng, 1, n, 1.0);
  g.covariances = random_spd(rng, n, 0.05);
  Schedule schedule = Schedule::paper_linear(300);
  GmmOracle oracle(g, schedule);
  std::vector<double> x = normal_rows(rng, rows, n, 1.5);
  for (int64_t t : {1, 7, 100, 300}) {
    const double abar = schedule.abar(t);
    // Closed form by a Cholesky solve (LAPACK dposv), independent of the eigenbasis route.
    std::vector<double> s = g.covariances, rhs(x.size());
    for (int64_t i = 0; i < n * n; ++i) s[i] *= abar;
    for (int64_t i = 0; i < n; ++i) s[i * n + i] += 1 - abar;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j)
        rhs[j * rows + i] = x[i * n + j] - std::sqrt(abar) * g.means[j];
    REQUIRE(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', n, rows, s.data(), n, rhs.data(), rows) == 0);
    std::vector<double> expected(x.size());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) expected[i * n + j] = std::sqrt(1 - abar) * rhs[j * rows + i];
    std::vector<double> eps = oracle.eps(x, t);
    INFO("t = " << t);
    CHECK(max_abs_diff(eps, expected) <= 1e-12 * std::max(1.0, max_abs(expected)));

    // The NoisePredictor entries: double path identical, float path to float rounding; each
    // call counts one evaluation.
    oracle.reset_evaluations();
    DoubleBatch batch = DoubleBatch::from_rows(x, rows, n);
    CHECK(oracle.predict_eps(batch, t).values == eps);
    std::vector<float> as_float = oracle.predict_eps(batch.to_tensor(), t).to_vector();
    CHECK(oracle.evaluations() == 2);
    std::vector<double> widened(as_float.begin(), as_float.end());
    CHECK(max_abs_diff(widened, expected) <= 1e-5 * std::max(1.0, max_abs(expected)));
  }
}

TEST_CASE("oracle log-density, score and Hessian agree with each other and the marginal GMM",
          "[oracle]") {
  Rng rng(2);
  const int64_t n = 3, k_count = 4, rows = 12;
  Gmm g = random_mixture(rng, n, k_count, 1.5);
  Schedule schedule = Schedule::paper_linear(50);
  GmmOracle oracle(g, schedule);
  for (int64_t t : {0, 1, 5, 20, 50}) {
    INFO("t = " << t);
    // Points around the marginal's bulk: mixed responsibilities and larger curvature.
    std::vector<double> x = normal_rows(rng, rows, n, 2.0);

    // log p_t against the datasets GMM (Cholesky route) on the mapped marginal.
    Gmm marginal = oracle.marginal(t);
    std::vector<double> joint = marginal.log_joint(x, marginal.factorize(0.0));
    std::vector<double> log_p = oracle.log_density(x, t);
    for (int64_t i = 0; i < rows; ++i)
      CHECK(log_p[i] ==
            Approx(dpm::datasets::log_sum_exp(joint.data() + i * k_count, k_count)).epsilon(1e-12));

    // Fourth-order differences with h = 1e-3: truncation ~h^4 f^(5) ~ 1e-12 and rounding
    // ~1e-16 |f| / h ~ 1e-13 for these O(1)-scaled functions, so 1e-8 leaves a wide margin
    // while a wrong term (e.g. a missing -S_k^-1) would be off by O(1).
    const double h = 1e-3;
    std::vector<double> score = oracle.score(x, t);
    std::vector<double> fd_score = finite_difference(
        [&](const std::vector<double>& p) { return oracle.log_density(p, t); }, x, n, 1, h);
    CHECK(max_abs_diff(score, fd_score) <= 1e-8 * std::max(1.0, max_abs(score)));

    std::vector<double> hessian = oracle.hessian(x, t);
    std::vector<double> fd_hessian = finite_difference(
        [&](const std::vector<double>& p) { return oracle.score(p, t); }, x, n, n, h);
    CHECK(max_abs_diff(hessian, fd_hessian) <= 1e-8 * std::max(1.0, max_abs(hessian)));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t a = 0; a < n; ++a)
        for (int64_t b = 0; b < a; ++b)
          CHECK(hessian[(i * n + a) * n + b] == hessian[(i * n + b) * n + a]);
  }
}

TEST_CASE("stepwise CME, its Jacobian and ||J_t|| against differences and a Jacobi eigen-solve",
          "[oracle]") {
  Rng rng(3);
  const int64_t n = 4, k_count = 3, rows = 10;
  Gmm g = random_mixture(rng, n, k_count, 1.2);
  Schedule schedule = Schedule::paper_linear(300);
  GmmOracle oracle(g, schedule);
  for (int64_t t : {1, 10, 60, 150, 300}) {
    INFO("t = " << t);
    const double abar = schedule.abar(t), alpha = schedule.alpha(t), beta = schedule.beta(t);
    std::vector<double> x = normal_rows(rng, rows, n, std::sqrt(abar) * 2.0 + std::sqrt(1 - abar));
    std::vector<double> score = oracle.score(x, t), f = oracle.stepwise_cme(x, t);
    for (size_t e = 0; e < x.size(); ++e)
      CHECK(f[e] == Approx((x[e] + beta * score[e]) / std::sqrt(alpha)).epsilon(1e-14));
    // The same step through eps*: f_t = mu(x, t) with the exact noise.
    std::vector<double> eps = oracle.eps(x, t);
    for (size_t e = 0; e < x.size(); ++e)
      CHECK(f[e] == Approx((x[e] - beta / std::sqrt(1 - abar) * eps[e]) / std::sqrt(alpha))
                        .epsilon(1e-12)
                        .margin(1e-13));

    std::vector<double> jacobian = oracle.stepwise_jacobian(x, t);
    std::vector<double> fd = finite_difference(
        [&](const std::vector<double>& p) { return oracle.stepwise_cme(p, t); }, x, n, n, 1e-3);
    CHECK(max_abs_diff(jacobian, fd) <= 1e-8 * std::max(1.0, max_abs(jacobian)));

    std::vector<double> norms = oracle.stepwise_jacobian_norm(x, t);
    REQUIRE(norms.size() == static_cast<size_t>(rows));
    // docs/protocol.md, Lipschitz facts: J_t = Cov(x_{t-1} | x_t) sqrt(alpha_t) / beta_t >= c_t I,
    // c_t the hyperparameter-only lower bound, so every eigenvalue is at least c_t.
    const double c_t = std::sqrt(alpha) * (1 - schedule.abar(t - 1)) / (1 - abar);
    for (int64_t i = 0; i < rows; ++i) {
      std::vector<double> j(jacobian.begin() + i * n * n, jacobian.begin() + (i + 1) * n * n);
      std::vector<double> w = jacobi_eigenvalues(j, n);
      CHECK(norms[i] == Approx(std::max(std::fabs(w.front()), std::fabs(w.back()))).epsilon(1e-12));
      CHECK(w.front() >= c_t * (1 - 1e-9));
    }
  }
}

TEST_CASE("oracle score of a high-dimensional GMM, where most responsibilities are exactly 0",
          "[oracle]") {
  // Means far apart in 40 dimensions: near a component every other one's log-joint is thousands
  // of nats lower, so its responsibility underflows to 0 and the score maps back only the held
  // components (at t = 1); at t = T the noise mixes them and the dense route runs.
  Rng rng(9);
  const int64_t n = 40, k_count = 6, rows = 70;
  Gmm g = random_mixture(rng, n, k_count, 3.0);
  Schedule schedule = Schedule::paper_linear(50);
  GmmOracle oracle(g, schedule);
  for (int64_t t : {1, 50}) {
    INFO("t = " << t);
    const double root_abar = std::sqrt(schedule.abar(t));
    std::vector<double> x = normal_rows(rng, rows, n, 0.5);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) x[i * n + j] += root_abar * g.means[(i % k_count) * n + j];
    Gmm marginal = oracle.marginal(t);
    std::vector<double> joint = marginal.log_joint(x, marginal.factorize(0.0));
    int64_t zeros = 0;
    std::vector<double> expected(x.size(), 0.0);
    for (int64_t k = 0; k < k_count; ++k) {
      // S_k^-1 (x_i - sqrt(abar) mu_k) for all rows by a Cholesky solve (LAPACK dposv).
      std::vector<double> s(marginal.covariances.begin() + k * n * n,
                            marginal.covariances.begin() + (k + 1) * n * n);
      std::vector<double> rhs(static_cast<size_t>(n * rows));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < n; ++j)
          rhs[j * rows + i] = x[i * n + j] - root_abar * g.means[k * n + j];
      REQUIRE(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', n, rows, s.data(), n, rhs.data(), rows) == 0);
      for (int64_t i = 0; i < rows; ++i) {
        const double w = std::exp(joint[i * k_count + k] -
                                  dpm::datasets::log_sum_exp(joint.data() + i * k_count, k_count));
        zeros += w == 0.0;
        for (int64_t j = 0; j < n; ++j) expected[i * n + j] -= w * rhs[j * rows + i];
      }
    }
    if (t == 1) CHECK(2 * zeros > rows * k_count);  // the held-components route
    if (t == 50) CHECK(zeros == 0);                 // the dense route
    CHECK(max_abs_diff(oracle.score(x, t), expected) <= 1e-10 * std::max(1.0, max_abs(expected)));
  }
}

TEST_CASE("oracle results do not depend on the thread count", "[oracle]") {
  Rng rng(4);
  Gmm g = random_mixture(rng, 6, 5, 1.0);
  GmmOracle oracle(g, Schedule::paper_linear(100));
  std::vector<double> x = normal_rows(rng, 150, 6, 1.0);  // several row blocks
  dpm::set_num_threads(1);
  std::vector<double> score_1 = oracle.score(x, 30), norm_1 = oracle.stepwise_jacobian_norm(x, 30);
  dpm::set_num_threads(2);
  CHECK(oracle.score(x, 30) == score_1);
  CHECK(oracle.stepwise_jacobian_norm(x, 30) == norm_1);
  dpm::set_num_threads(0);
}

TEST_CASE("oracle rejects bad steps, shapes and priors", "[oracle]") {
  Rng rng(5);
  Gmm g = random_mixture(rng, 3, 2, 1.0);
  GmmOracle oracle(g, Schedule::paper_linear(10));
  std::vector<double> x = normal_rows(rng, 2, 3, 1.0);
  CHECK_THROWS_WITH(oracle.eps(x, 0), Catch::Contains("step t must be in 1..10, got 0"));
  CHECK_THROWS_WITH(oracle.score(x, 11), Catch::Contains("step t must be in 0..10, got 11"));
  CHECK_NOTHROW(oracle.score(x, 0));
  CHECK_THROWS_WITH(oracle.score(std::vector<double>(4, 0.0), 3),
                    Catch::Contains("not rows of the prior's dimension 3"));
  DoubleBatch wrong{dpm::Shape{2, 2}, std::vector<double>(4, 0.0)};
  CHECK_THROWS_WITH(oracle.predict_eps(wrong, 3),
                    Catch::Contains("have 2 values each, the prior has dimension 3"));
  // [B, 1, N] (a 1-channel signal) is accepted: only the per-sample size must match.
  DoubleBatch channels{dpm::Shape{2, 1, 3}, x};
  CHECK(oracle.predict_eps(channels, 3).shape == channels.shape);
  Gmm bad = g;
  bad.covariances[0] = -1.0;
  CHECK_THROWS_AS(GmmOracle(bad, Schedule::paper_linear(10)), std::invalid_argument);
}
