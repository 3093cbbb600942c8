#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/inverse/operators.hpp"
#include "diffusion/inverse/posterior.hpp"
#include "diffusion/inverse/red_diff.hpp"
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

// y = A x0 + sigma_y n through a 4 x 6 compressed-sensing matrix (a null space of dimension 2)
// under a one-component GMM N(m, S) with a random SPD S, and eps* of that prior.
struct GaussianCase {
  GaussianCase(int64_t rows, double sigma_y_in)
      : op(make_compressed_sensing(4, kDim, 21)),
        oracle(make_prior(), Schedule::ddpm_linear(1000)),
        sigma_y(sigma_y_in) {
    Rng rng(22);
    const std::vector<double> x0 = normal_rows(rng, rows, kDim, 1.0);
    ScopedBatch batch(op, rows);
    y = op.apply(x0);
    for (double& v : y) v += sigma_y * rng.normal();
  }
  static dpm::datasets::Gmm make_prior() {
    Rng rng(20);
    return random_mixture(rng, kDim, 1, 1.0);
  }
  Problem problem() const { return {y, sigma_y, {kDim}}; }
  int64_t m() const { return op.output_dim(); }

  DenseOperator op;
  GmmOracle oracle;
  double sigma_y;
  std::vector<double> y;
};

// E_eps of the regulariser's gradient direction eps*(x_t) - eps at x_t = sqrt(abar) x + sqrt(1 -
// abar) eps for the Gaussian prior: eps*(x) = sqrt(1 - abar) Sigma_t^-1 (x - sqrt(abar) m), so
// the expectation (and the antithetic average, eps*(x_t) being affine in eps) is
// sqrt(abar (1 - abar)) Sigma_t^-1 (x - m), row by row.
std::vector<double> expected_regulariser(const GmmOracle& oracle, int64_t t,
                                         const std::vector<double>& x) {
  const double abar = oracle.schedule().abar(t);
  const auto& prior = oracle.prior();
  std::vector<double> centred = x;
  for (size_t i = 0; i < x.size(); ++i) centred[i] -= prior.means[i % kDim];
  std::vector<double> out =
      solve_rows(noisy_covariance(prior.covariances, kDim, abar), kDim, centred);
  for (double& v : out) v *= std::sqrt(abar * (1.0 - abar));
  return out;
}

// A^T (A x - y) row by row, from the dense matrix.
std::vector<double> data_gradient(GaussianCase& c, const std::vector<double>& x) {
  const std::vector<double> a = dense_matrix(c.op);
  std::vector<double> residual = multiply_rows(a, c.m(), kDim, x);
  for (size_t j = 0; j < residual.size(); ++j) residual[j] -= c.y[j];
  return multiply_rows(transposed(a, c.m(), kDim), kDim, c.m(), residual);
}

double inverse_sqrt_snr(const Schedule& schedule, int64_t t) {
  return std::sqrt(1.0 - schedule.abar(t)) / std::sqrt(schedule.abar(t));
}

// The zero of the expected step gradient at one t (sigma_x0 = 0):
//   data_scale A^T (A mu - y) + reg_scale sqrt(abar (1 - abar)) Sigma_t^-1 (mu - m) = 0,
// solved as (data_scale A^T A + reg_scale c Sigma_t^-1) mu = data_scale A^T y + reg_scale c
// Sigma_t^-1 m, with Sigma_t^-1 formed column by column.
std::vector<double> fixed_point(GaussianCase& c, int64_t t, double data_scale, double reg_scale) {
  const double abar = c.oracle.schedule().abar(t);
  const double weight = reg_scale * std::sqrt(abar * (1.0 - abar));
  const auto& prior = c.oracle.prior();
  std::vector<double> eye(kDim * kDim, 0.0);
  for (int64_t i = 0; i < kDim; ++i) eye[i * kDim + i] = 1.0;
  // Rows of the (symmetric) inverse.
  const std::vector<double> sigma_inverse =
      solve_rows(noisy_covariance(prior.covariances, kDim, abar), kDim, eye);
  const std::vector<double> a = dense_matrix(c.op);
  const std::vector<double> at = transposed(a, c.m(), kDim);
  const std::vector<double> prior_pull = multiply_rows(sigma_inverse, kDim, kDim, prior.means);
  std::vector<double> hessian(kDim * kDim);
  for (int64_t i = 0; i < kDim; ++i)
    for (int64_t j = 0; j < kDim; ++j) {
      double ata = 0.0;
      for (int64_t r = 0; r < c.m(); ++r) ata += a[r * kDim + i] * a[r * kDim + j];
      hessian[i * kDim + j] = data_scale * ata + weight * sigma_inverse[i * kDim + j];
    }
  std::vector<double> rhs = multiply_rows(at, kDim, c.m(), c.y);
  for (size_t i = 0; i < rhs.size(); ++i)
    rhs[i] = data_scale * rhs[i] + weight * prior_pull[i % kDim];
  return solve_rows(hessian, kDim, rhs);
}

}  // namespace

TEST_CASE("red_diff_weight is each of the authors' weightings of 1 / sqrt(SNR)", "[inverse]") {
  for (const double r : {0.25, 4.0}) {
    INFO("r = " << r);
    CHECK(red_diff_weight(RedDiffWeighting::linear, r) == r);
    CHECK(red_diff_weight(RedDiffWeighting::sqrt, r) == std::sqrt(r));
    CHECK(red_diff_weight(RedDiffWeighting::square, r) == r * r);
    CHECK(red_diff_weight(RedDiffWeighting::log, r) == Approx(std::log(1.0 + r)).epsilon(1e-15));
    CHECK(red_diff_weight(RedDiffWeighting::trunc_linear, r) == std::min(r, 1.0));
    CHECK(red_diff_weight(RedDiffWeighting::constant, r) == 1.0);
  }
  CHECK(red_diff_weight(RedDiffWeighting::constant, 0.0) == 1.0);  // torch.pow(0, 0) = 1
  REQUIRE_THROWS_WITH(red_diff_weight(RedDiffWeighting::linear, -1.0),
                      Catch::Contains("red_diff_weight: inverse_sqrt_snr must be non-negative"));
  REQUIRE_THROWS_WITH(red_diff_weight(RedDiffWeighting::linear, NAN),
                      Catch::Contains("inverse_sqrt_snr must be non-negative and finite"));
}

// The gradient of one step against its closed form for the Gaussian prior with eps*: plain
// (eps*(x_t) - noise_xt, eps* affine in x_t) and antithetic (the exact expectation), for both
// data terms and sigma_x0 > 0 (x0_pred = mu + sigma_x0 noise_x0 enters both terms).
TEST_CASE("red_diff_gradient is the authors' gradient in closed form for a Gaussian prior",
          "[inverse]") {
  const int64_t rows = 2, t = 400;
  GaussianCase c(rows, 0.1);
  const Schedule& schedule = c.oracle.schedule();
  const double abar = schedule.abar(t);
  Rng rng(23);
  const std::vector<double> mu = normal_rows(rng, rows, kDim, 1.0);
  const std::vector<double> noise_x0 = normal_rows(rng, rows, kDim, 1.0);
  const std::vector<double> noise_xt = normal_rows(rng, rows, kDim, 1.0);

  RedDiffSettings settings;
  settings.lambda = 0.7;
  settings.obs_weight = 1.3;
  settings.sigma_x0 = 0.2;
  settings.weighting = RedDiffWeighting::sqrt;
  std::vector<double> x0_pred = mu, x_t(mu.size());
  for (size_t i = 0; i < mu.size(); ++i) {
    x0_pred[i] += settings.sigma_x0 * noise_x0[i];
    x_t[i] = std::sqrt(abar) * x0_pred[i] + std::sqrt(1.0 - abar) * noise_xt[i];
  }
  const double w_t = 0.7 * std::sqrt(inverse_sqrt_snr(schedule, t));
  const std::vector<double> data = data_gradient(c, x0_pred);
  const std::vector<double> antithetic_reg = expected_regulariser(c.oracle, t, x0_pred);
  // eps*(x_t) - noise_xt = sqrt(1 - abar) Sigma_t^-1 (x_t - sqrt(abar) m) - noise_xt: the
  // expectation's formula at x = x_t / sqrt(abar), rescaled.
  std::vector<double> x_t_over_root = x_t;
  for (double& v : x_t_over_root) v /= std::sqrt(abar);
  std::vector<double> plain_reg = expected_regulariser(c.oracle, t, x_t_over_root);
  for (size_t i = 0; i < plain_reg.size(); ++i) plain_reg[i] = plain_reg[i] - noise_xt[i];

  for (const bool antithetic : {false, true})
    for (const RedDiffDataTerm term :
         {RedDiffDataTerm::authors_mean, RedDiffDataTerm::likelihood}) {
      INFO("antithetic " << antithetic << ", likelihood " << (term == RedDiffDataTerm::likelihood));
      settings.antithetic = antithetic;
      settings.data_term = term;
      const bool mean = term == RedDiffDataTerm::authors_mean;
      const double data_scale = 1.3 / (mean ? static_cast<double>(c.m()) : 0.1 * 0.1);
      const double reg_scale = w_t / (mean ? static_cast<double>(kDim) : 1.0);
      const std::vector<double>& reg = antithetic ? antithetic_reg : plain_reg;
      std::vector<double> expected(mu.size());
      for (size_t i = 0; i < mu.size(); ++i)
        expected[i] = data_scale * data[i] + reg_scale * reg[i];
      const int64_t before = c.oracle.evaluations();
      const std::vector<double> gradient = red_diff_gradient(
          settings, c.op, c.problem(), oracle_prior(c.oracle), t, mu, noise_x0, noise_xt);
      CHECK(c.oracle.evaluations() == before + 1);
      // eps* by its eigendecomposition and the reference by Gaussian elimination on the same
      // well-conditioned 6 x 6 Sigma_t (eigenvalues >= 0.1 abar + 1 - abar): both to a few ulps of
      // the O(1)..O(100) terms, far inside 1e-12 relative.
      CHECK(max_abs_difference(gradient, expected) <= 1e-12 * max_abs_value(expected));
    }
}

// With the gradient's expectation at one t, RED-Diff's Adam iterates to the zero of the affine
// map above, compared with the dense solution. Adam at a constant lr does not settle exactly:
// once the gradient has fallen far below its running second moment, sqrt(v) decays and the steps
// lr m / sqrt(v) grow back to order lr, kicking mu off and back again. Measured on this problem
// for lr = 0.1, 0.01, 0.001 and 250..16000 steps (after the approach, about 1 / lr steps from
// A^+ y at distance ~2), both data terms: the distance never exceeded 0.1 lr (and dips to 1e-15
// in between). The bound 0.2 lr at two lr ten times apart shows that the limit as lr -> 0 is the
// fixed point itself.
TEST_CASE("RED-Diff at one repeated t reaches the fixed point of its expected gradient",
          "[inverse]") {
  const int64_t rows = 2, t = 500;
  GaussianCase c(rows, 0.1);
  RedDiffSettings settings;
  settings.antithetic = true;  // sigma_x0 = 0: the gradient is the expectation, deterministic
  settings.lambda = 1.0;
  const double w_t = inverse_sqrt_snr(c.oracle.schedule(), t);
  for (const RedDiffDataTerm term : {RedDiffDataTerm::authors_mean, RedDiffDataTerm::likelihood}) {
    const bool mean = term == RedDiffDataTerm::authors_mean;
    settings.data_term = term;
    const std::vector<double> expected =
        fixed_point(c, t, 1.0 / (mean ? static_cast<double>(c.m()) : 0.1 * 0.1),
                    w_t / (mean ? static_cast<double>(kDim) : 1.0));
    for (const auto& [lr, count] : {std::pair{0.01, 2000}, std::pair{0.001, 5000}}) {
      INFO("likelihood " << !mean << ", lr " << lr << ", " << count << " steps");
      settings.lr = lr;
      Rng rng(24);
      const Restored restored = red_diff_on_steps(settings, std::vector<int64_t>(count, t), c.op,
                                                  c.problem(), oracle_prior(c.oracle), rng);
      CHECK(max_abs_difference(restored.x_hat.values, expected) <= 0.2 * lr);
      CHECK(restored.evaluations == count);
    }
    if (!mean) {
      // A documented property: the fixed point solves (A^T A / sigma_y^2 + w_t c Sigma_t^-1) mu
      // = ..., the posterior mean (A^T A / sigma_y^2 + S^-1) mu = ...; Sigma_t^-1 is no multiple
      // of S^-1 for a non-isotropic S, so the two differ: here by 0.70 (max over entries),
      // against the 2e-4 to which RED-Diff reaches the fixed point.
      const std::vector<double> posterior = posterior_mean(c.oracle.prior(), c.op, c.y, 0.1);
      CHECK(max_abs_difference(expected, posterior) >= 0.5);
    }
  }
}

// The solver's loop written out: per step noise_x0 then noise_xt drawn [B, n] from the solver's
// Rng, the step's gradient, and torch.optim.Adam's update (betas (0.9, 0.99), eps 1e-8, bias
// corrections) on mu from A^+ y. The same arithmetic in the same order, so equal to rounding.
TEST_CASE("RED-Diff is Adam on the step gradients with the documented draw order", "[inverse]") {
  const int64_t rows = 2;
  const std::vector<int64_t> steps{900, 300, 600, 20};
  GaussianCase c(rows, 0.1);
  RedDiffSettings settings;
  settings.sigma_x0 = 0.3;
  settings.lr = 0.05;
  Rng rng(28), reference_rng(28);
  const Restored restored =
      red_diff_on_steps(settings, steps, c.op, c.problem(), oracle_prior(c.oracle), rng);

  std::vector<double> mu;
  {
    ScopedBatch batch(c.op, rows);
    mu = c.op.pseudo_inverse(c.y);
  }
  std::vector<double> m(mu.size(), 0.0), v(mu.size(), 0.0);
  for (size_t k = 1; k <= steps.size(); ++k) {
    const std::vector<double> noise_x0 = normal_rows(reference_rng, rows, kDim, 1.0);
    const std::vector<double> noise_xt = normal_rows(reference_rng, rows, kDim, 1.0);
    const std::vector<double> g = red_diff_gradient(
        settings, c.op, c.problem(), oracle_prior(c.oracle), steps[k - 1], mu, noise_x0, noise_xt);
    for (size_t i = 0; i < mu.size(); ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
      const double m_hat = m[i] / (1.0 - std::pow(0.9, k));
      const double v_hat = v[i] / (1.0 - std::pow(0.99, k));
      mu[i] -= settings.lr * m_hat / (std::sqrt(v_hat) + 1e-8);
    }
  }
  // torch divides lr (not m) by the first correction and sqrt(v) by the root of the second; the
  // test's textbook form differs by a few ulps of |mu| = O(1) per step.
  CHECK(max_abs_difference(restored.x_hat.values, mu) <= 1e-14);
}

// The start: no steps leave mu at A^+ y, or at A^T y.
TEST_CASE("RED-Diff starts from the pseudo-inverse A^+ y or the adjoint A^T y", "[inverse]") {
  GaussianCase c(3, 0.1);
  Rng rng(25);
  RedDiffSettings settings;
  const Restored from_pinv =
      red_diff_on_steps(settings, {}, c.op, c.problem(), oracle_prior(c.oracle), rng);
  settings.start = RedDiffStart::adjoint;
  const Restored from_adjoint =
      red_diff_on_steps(settings, {}, c.op, c.problem(), oracle_prior(c.oracle), rng);
  ScopedBatch batch(c.op, 3);
  CHECK(from_pinv.x_hat.values == c.op.pseudo_inverse(c.y));
  CHECK(from_adjoint.x_hat.values == c.op.adjoint(c.y));
  CHECK(from_adjoint.x_hat.values != from_pinv.x_hat.values);
  CHECK(from_pinv.x_hat.shape == dpm::Shape({3, kDim}));
  CHECK(from_pinv.evaluations == 0);
}

TEST_CASE("RED-Diff visits the grid in the chosen order, one evaluation per step", "[inverse]") {
  GaussianCase c(2, 0.1);
  RecordingPredictor recorder(c.oracle);
  const Prior prior{recorder, c.oracle.schedule(), {}};
  RedDiffSettings settings;
  settings.grid = {0, 0, 10};  // steps 1, 101, ..., 901 at T = 1000
  const std::vector<int64_t> ascending{1, 101, 201, 301, 401, 501, 601, 701, 801, 901};
  auto run = [&](StepOrder order, bool antithetic, uint64_t seed) {
    settings.order = order;
    settings.antithetic = antithetic;
    recorder.steps.clear();
    recorder.rows.clear();
    Rng rng(seed);
    const Restored restored = red_diff(settings, c.op, c.problem(), prior, rng);
    CHECK(restored.evaluations == 10);
    CHECK(restored.backward_passes == 0);
    CHECK(recorder.steps.size() == 10);
    // One call per step, of B rows or of 2B when antithetic.
    CHECK(recorder.rows == std::vector<int64_t>(10, antithetic ? 4 : 2));
    return restored.x_hat.values;
  };
  run(StepOrder::ascending, false, 1);
  CHECK(recorder.steps == ascending);
  run(StepOrder::descending, true, 1);
  CHECK(recorder.steps == std::vector<int64_t>(ascending.rbegin(), ascending.rend()));

  const std::vector<double> first = run(StepOrder::random, false, 7);
  const std::vector<int64_t> order = recorder.steps;
  // The permutation is the solver Rng's first draw.
  Rng reference(7);
  std::vector<int64_t> expected;
  for (int64_t index : reference.permutation(10)) expected.push_back(ascending[index]);
  CHECK(order == expected);
  CHECK(run(StepOrder::random, false, 7) == first);  // deterministic per seed
  CHECK(recorder.steps == order);
  run(StepOrder::random, false, 8);
  CHECK(recorder.steps != order);  // another seed, another of the 10! orders
  std::vector<int64_t> sorted = recorder.steps;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == ascending);
}

// The draws are batch-wide, so the same seed gives row 0 the same noise whatever the other rows
// hold: changing their measurements must leave row 0 bitwise unchanged (its gradient is its own,
// with no 1 / B, and Adam is element-wise). Comparing a batch of 3 with the row alone is not
// possible: row 0 of a batch draws different numbers from the same seed.
TEST_CASE("a RED-Diff row does not depend on the other rows of its batch", "[inverse]") {
  GaussianCase c(3, 0.1);
  RedDiffSettings settings;
  settings.grid = {0, 0, 20};
  settings.sigma_x0 = 0.1;
  Rng rng(26);
  const Restored original = red_diff(settings, c.op, c.problem(), oracle_prior(c.oracle), rng);
  Problem changed = c.problem();
  for (size_t j = static_cast<size_t>(c.m()); j < changed.y.size(); ++j) changed.y[j] *= -3.0;
  rng = Rng(26);
  const Restored other = red_diff(settings, c.op, changed, oracle_prior(c.oracle), rng);
  for (int64_t i = 0; i < kDim; ++i) CHECK(other.x_hat.values[i] == original.x_hat.values[i]);
  CHECK(other.x_hat.values[kDim] != original.x_hat.values[kDim]);
}

TEST_CASE("RED-Diff rejects bad settings and problems, naming the field", "[inverse]") {
  GaussianCase c(1, 0.1);
  const Prior prior = oracle_prior(c.oracle);
  Rng rng(27);
  auto rejects = [&](const RedDiffSettings& settings, const Problem& problem,
                     const std::string& message) {
    REQUIRE_THROWS_WITH(red_diff(settings, c.op, problem, prior, rng), Catch::Contains(message));
  };
  RedDiffSettings bad;
  bad.lr = 0.0;
  rejects(bad, c.problem(), "red_diff: lr must be positive and finite, got 0");
  bad.lr = INFINITY;
  rejects(bad, c.problem(), "red_diff: lr must be positive and finite, got inf");
  bad = {};
  bad.lambda = -0.5;
  rejects(bad, c.problem(), "red_diff: lambda must be non-negative and finite, got -0.5");
  bad = {};
  bad.obs_weight = NAN;
  rejects(bad, c.problem(), "red_diff: obs_weight must be non-negative and finite, got nan");
  bad = {};
  bad.sigma_x0 = -1.0;
  rejects(bad, c.problem(), "red_diff: sigma_x0 must be non-negative and finite, got -1");
  bad = {};
  bad.grid.num_steps = 5000;
  rejects(bad, c.problem(), "red_diff: num_steps must lie in 0..1000");

  Problem noiseless = c.problem();
  noiseless.sigma_y = 0.0;
  RedDiffSettings likelihood;
  likelihood.data_term = RedDiffDataTerm::likelihood;
  rejects(likelihood, noiseless, "red_diff: sigma_y must be positive and finite, got 0");
  likelihood.data_term = RedDiffDataTerm::authors_mean;  // sigma_y does not enter
  CHECK_NOTHROW(red_diff(likelihood, c.op, noiseless, prior, rng));
  Problem ragged = c.problem();
  ragged.y.push_back(0.0);
  rejects({}, ragged, "red_diff: y must hold whole rows of m = 4");

  REQUIRE_THROWS_WITH(red_diff_on_steps({}, {5, 0}, c.op, c.problem(), prior, rng),
                      Catch::Contains("red_diff_on_steps: every step must lie in 1..1000, got 0"));
  REQUIRE_THROWS_WITH(red_diff_on_steps({}, {1001}, c.op, c.problem(), prior, rng),
                      Catch::Contains("got 1001"));
  const std::vector<double> row(kDim, 0.0), short_row(kDim - 1, 0.0);
  REQUIRE_THROWS_WITH(red_diff_gradient({}, c.op, c.problem(), prior, 0, row, row, row),
                      Catch::Contains("red_diff_gradient: t must lie in 1..1000, got 0"));
  REQUIRE_THROWS_WITH(
      red_diff_gradient({}, c.op, c.problem(), prior, 3, row, short_row, row),
      Catch::Contains("red_diff_gradient: noise_x0 must hold [B, n] = 6 values, got 5"));
  REQUIRE_THROWS_WITH(red_diff_gradient({}, c.op, c.problem(), prior, 3, short_row, row, row),
                      Catch::Contains("red_diff_gradient: mu must hold"));
  REQUIRE_THROWS_WITH(red_diff_gradient({}, c.op, c.problem(), prior, 3, row, row, short_row),
                      Catch::Contains("red_diff_gradient: noise_xt must hold"));
}
