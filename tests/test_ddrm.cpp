#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/inverse/ddrm.hpp"
#include "diffusion/inverse/operators.hpp"
#include "diffusion/inverse/posterior.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/schedule.hpp"
#include "inverse_solver_fixtures.hpp"
#include "oracle_fixtures.hpp"

using dpm::Rng;
using dpm::diffusion::GmmOracle;
using dpm::diffusion::Schedule;
using namespace dpm::diffusion::inverse;
using namespace dpm::testing;

namespace {

constexpr int64_t kDim = 6;

GmmOracle make_oracle(int64_t components) {
  Rng rng(30 + static_cast<uint64_t>(components));
  return GmmOracle(random_mixture(rng, kDim, components, 1.0), Schedule::ddpm_linear(1000));
}

std::vector<double> measure(MeasurementOperator& op, int64_t rows, double sigma_y, uint64_t seed) {
  Rng rng(seed);
  const std::vector<double> x0 = normal_rows(rng, rows, op.input_dim(), 1.0);
  ScopedBatch batch(op, rows);
  std::vector<double> y = op.apply(x0);
  for (double& v : y) v += sigma_y * rng.normal();
  return y;
}

double noise_level(const Schedule& schedule, int64_t t) {
  return std::sqrt((1.0 - schedule.abar(t)) / schedule.abar(t));
}

// DDRM written out with a dense SVD (u [m, m], s [k], vt [n, n] from LAPACK), in the authors'
// terms (sigma_tilde = sqrt(sigma_s^2 - (eta sigma_s)^2)), drawing z [B, n] at the start and at
// every step as the solver documents.
std::vector<double> reference_ddrm(const DenseSvd& svd, const std::vector<double>& y,
                                   double sigma_y, double eta, double eta_b, GmmOracle& oracle,
                                   const std::vector<int64_t>& grid, Rng& rng) {
  const int64_t m = svd.rows, n = svd.cols, k = static_cast<int64_t>(svd.s.size());
  const int64_t rows = static_cast<int64_t>(y.size()) / m;
  const std::vector<double> v = transposed(svd.vt, n, n);
  const std::vector<double> ut_y = multiply_rows(transposed(svd.u, m, m), m, m, y);
  const Schedule& schedule = oracle.schedule();
  auto singular = [&](int64_t i) { return i < k ? svd.s[i] : 0.0; };
  auto to_x = [&](const std::vector<double>& spectral, int64_t t) {
    std::vector<double> x = multiply_rows(v, n, n, spectral);
    for (double& e : x) e *= std::sqrt(schedule.abar(t));
    return x;
  };

  const double sigma_top = noise_level(schedule, grid.back());
  std::vector<double> spectral = normal_rows(rng, rows, n, 1.0);
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t i = 0; i < n; ++i) {
      const double s = singular(i);
      double& x = spectral[b * n + i];
      x = s * sigma_top > sigma_y
              ? ut_y[b * m + i] / s +
                    std::sqrt(sigma_top * sigma_top - std::pow(sigma_y / s, 2)) * x
              : sigma_top * x;
    }
  std::vector<double> x_t = to_x(spectral, grid.back());
  for (size_t j = grid.size(); j-- > 0;) {
    const int64_t t = grid[j], s_step = j == 0 ? 0 : grid[j - 1];
    const double abar = schedule.abar(t), sigma_s = noise_level(schedule, s_step);
    const std::vector<double> eps = oracle.eps(x_t, t);
    std::vector<double> x0(x_t.size());
    for (size_t e = 0; e < x0.size(); ++e)
      x0[e] = (x_t[e] - std::sqrt(1.0 - abar) * eps[e]) / std::sqrt(abar);
    const std::vector<double> vt_x0 = multiply_rows(svd.vt, n, n, x0);
    const std::vector<double> vt_eps = multiply_rows(svd.vt, n, n, eps);
    const std::vector<double> z = normal_rows(rng, rows, n, 1.0);
    const double std_next = sigma_s * eta;
    const double sigma_tilde = std::sqrt(sigma_s * sigma_s - std_next * std_next);
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t e = b * n + i;
        const double s = singular(i);
        if (i < k && s * sigma_s > sigma_y)
          spectral[e] =
              ut_y[b * m + i] / s * eta_b + (1.0 - eta_b) * vt_x0[e] +
              std::sqrt(sigma_s * sigma_s - sigma_y * sigma_y / (s * s) * eta_b * eta_b) * z[e];
        else if (i < k && s * sigma_s < sigma_y)
          spectral[e] =
              vt_x0[e] + sigma_tilde * (ut_y[b * m + i] - s * vt_x0[e]) / sigma_y + std_next * z[e];
        else
          spectral[e] = vt_x0[e] + sigma_tilde * vt_eps[e] + std_next * z[e];
      }
    x_t = to_x(spectral, s_step);
  }
  return x_t;
}

}  // namespace

// Compressed sensing with a null space (4 x 6) and overdetermined (8 x 6, U^T y has coordinates
// beyond k = n), noisy and noiseless, on a three-component mixture (a non-linear eps*).
TEST_CASE("DDRM matches a dense re-implementation of the authors' algorithm", "[inverse]") {
  GmmOracle oracle = make_oracle(3);
  const DdrmSettings base;  // 20 steps
  std::vector<int64_t> grid;
  for (int64_t i = 0; i < 20; ++i) grid.push_back(1 + 50 * i);
  for (const int64_t m : {4, 8})
    for (const double sigma_y : {0.1, 0.0})
      for (const double eta_b : {1.0, 0.6}) {
        INFO("m = " << m << ", sigma_y = " << sigma_y << ", eta_b = " << eta_b);
        DenseOperator op = make_compressed_sensing(m, kDim, 31);
        const std::vector<double> y = measure(op, 2, sigma_y, 32);
        DdrmSettings settings = base;
        settings.eta_b = eta_b;
        Rng rng(33), reference_rng(33);
        const Restored restored =
            ddrm(settings, op, {y, sigma_y, {kDim}}, oracle_prior(oracle), rng);
        const std::vector<double> expected =
            reference_ddrm(dense_svd(dense_matrix(op), m, kDim, "test"), y, sigma_y, settings.eta,
                           eta_b, oracle, grid, reference_rng);
        // Both compute the same sums in different orders (operator GEMMs against loops): rounding
        // of ~1e-16 per operation, carried through 20 steps of a smooth eps* with |x| = O(1).
        CHECK(max_abs_difference(restored.x_hat.values, expected) <= 1e-12);
        CHECK(restored.evaluations == 20);
      }
}

// A = I, eta_b = 1 and sigma_y below the noise level sigma_t1 of the grid's lowest step: every
// coordinate is noisier than y down to t1, where DDRM then holds y + sqrt(sigma_t1^2 - sigma_y^2) z
// whatever the prior (z the draw of the step to t1), and the last step returns Tweedie's x0_hat of
// that, which for eps* is the exact E[x0 | x0 + sigma_t1 n = w]: the GMM posterior mean.
TEST_CASE("DDRM for denoising with eta_b = 1 is the posterior mean at the lowest grid step",
          "[inverse]") {
  const int64_t rows = 3;
  for (const int64_t components : {1, 3}) {
    INFO(components << " components");
    GmmOracle oracle = make_oracle(components);
    IdentityOperator op(kDim);
    DdrmSettings settings;
    settings.grid = {0, 100, 9};  // steps 101, 201, ..., 901
    const int64_t lowest = 101;
    const double sigma_lowest = noise_level(oracle.schedule(), lowest), sigma_y = 0.3;
    REQUIRE(sigma_y < sigma_lowest);
    const std::vector<double> y = measure(op, rows, sigma_y, 34);
    Rng rng(35);
    const Restored restored = ddrm(settings, op, {y, sigma_y, {kDim}}, oracle_prior(oracle), rng);

    Rng draws(35);
    for (int draw = 0; draw < 8; ++draw) normal_rows(draws, rows, kDim, 1.0);  // start, 7 steps
    const std::vector<double> z = normal_rows(draws, rows, kDim, 1.0);         // step 201 -> 101
    std::vector<double> w(y.size());
    for (size_t e = 0; e < w.size(); ++e)
      w[e] = y[e] + std::sqrt(sigma_lowest * sigma_lowest - sigma_y * sigma_y) * z[e];
    const std::vector<double> expected = posterior_mean(oracle.prior(), op, w, sigma_lowest);
    // Tweedie through eps* (eigenbasis) against the posterior mean (Cholesky of C + sigma^2 I):
    // both exact to rounding on well-conditioned 6 x 6 systems.
    CHECK(max_abs_difference(restored.x_hat.values, expected) <= 1e-12);
  }
}

// Draws are batch-wide: with the same seed, changing the other rows' measurements must leave
// row 0 bitwise unchanged.
TEST_CASE("a DDRM row does not depend on the other rows of its batch", "[inverse]") {
  GmmOracle oracle = make_oracle(3);
  MaskOperator op = MaskOperator::random(kDim, 0.5, 36);
  std::vector<double> y = measure(op, 3, 0.05, 37);
  Rng rng(38);
  oracle.reset_evaluations();
  const Restored original = ddrm({}, op, {y, 0.05, {kDim}}, oracle_prior(oracle), rng);
  CHECK(oracle.evaluations() == 20);
  for (size_t j = static_cast<size_t>(op.output_dim()); j < y.size(); ++j) y[j] += 1.0;
  rng = Rng(38);
  const Restored other = ddrm({}, op, {y, 0.05, {kDim}}, oracle_prior(oracle), rng);
  for (int64_t i = 0; i < kDim; ++i) CHECK(other.x_hat.values[i] == original.x_hat.values[i]);
  CHECK(other.x_hat.values[kDim] != original.x_hat.values[kDim]);
}

TEST_CASE("DDRM rejects bad settings and operators without an SVD, naming them", "[inverse]") {
  GmmOracle oracle = make_oracle(1);
  const Prior prior = oracle_prior(oracle);
  IdentityOperator op(kDim);
  const Problem problem{std::vector<double>(kDim, 0.0), 0.1, {kDim}};
  Rng rng(39);
  auto rejects = [&](double eta, double eta_b, const std::string& message) {
    DdrmSettings settings;
    settings.eta = eta;
    settings.eta_b = eta_b;
    REQUIRE_THROWS_WITH(ddrm(settings, op, problem, prior, rng), Catch::Contains(message));
  };
  rejects(-0.1, 1.0, "ddrm: eta must be in [0, 1], got -0.1");
  rejects(1.5, 1.0, "ddrm: eta must be in [0, 1], got 1.5");
  rejects(NAN, 1.0, "ddrm: eta must be in [0, 1], got nan");
  rejects(0.5, -1.0, "ddrm: eta_b must be in [0, 1], got -1");
  rejects(0.5, 2.0, "ddrm: eta_b must be in [0, 1], got 2");
  rejects(0.5, NAN, "ddrm: eta_b must be in [0, 1], got nan");

  DoublingOperator no_svd(kDim);
  REQUIRE_THROWS_WITH(ddrm({}, no_svd, problem, prior, rng),
                      Catch::Contains("ddrm: operator 'doubling' has no SVD"));
  Problem negative = problem;
  negative.sigma_y = -1.0;
  REQUIRE_THROWS_WITH(ddrm({}, op, negative, prior, rng),
                      Catch::Contains("ddrm: sigma_y must be non-negative and finite"));
  DdrmSettings too_many;
  too_many.grid.num_steps = 2000;
  REQUIRE_THROWS_WITH(ddrm(too_many, op, problem, prior, rng),
                      Catch::Contains("ddrm: num_steps must lie in 0..1000"));
}
