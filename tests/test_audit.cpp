#include <lapacke.h>
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/jacobian.hpp"
#include "diffusion/lipschitz_bounds.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/oracle_jacobian.hpp"
#include "experiments/lipschitz_audit.hpp"
#include "experiments/lipschitz_audit_report.hpp"
#include "nn/lipschitz/singular_values.hpp"
#include "nn/unet.hpp"
#include "tests/oracle_fixtures.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/dpm_training.hpp"

namespace fs = std::filesystem;
using namespace dpm;
using namespace dpm::diffusion;
using namespace dpm::experiments;
using namespace dpm::lipschitz;
using dpm::testing::TempDir;

namespace {

std::shared_ptr<nn::NoiseModel> small_mlp(int64_t dim, uint64_t seed) {
  Rng rng(seed);
  return nn::make_noise_model(
      {{"arch", "mlp"}, {"dim", dim}, {"width", 32}, {"depth", 2}, {"time_embedding_size", 16}},
      rng);
}

// Two levels of 4 and 8 channels: every kind of U-Net layer, on length-8 inputs.
std::shared_ptr<nn::NoiseModel> small_unet(uint64_t seed) {
  Rng rng(seed);
  nn::UNetOptions options;
  options.base_channels = 4;
  options.channel_multipliers = {1, 2};
  options.blocks_per_level = 1;
  options.time_embedding_size = 8;
  options.time_hidden_size = 16;
  return std::make_shared<nn::UNet>(options, rng);
}

DoubleBatch random_batch(const Shape& shape, Rng& rng) {
  DoubleBatch b{shape, std::vector<double>(static_cast<size_t>(shape.numel()))};
  for (double& v : b.values) v = rng.normal();
  return b;
}

std::vector<double> random_vector(size_t size, Rng& rng) {
  std::vector<double> v(size);
  for (double& x : v) x = rng.normal();
  return v;
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

double largest_singular_value(std::vector<double> a, int64_t n) {
  std::vector<double> s(static_cast<size_t>(n)), superb(static_cast<size_t>(n));
  REQUIRE(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', n, n, a.data(), n, s.data(), nullptr, 1,
                         nullptr, 1, superb.data()) == 0);
  return s[0];
}

std::vector<double> symmetric_eigenvalues(std::vector<double> a, int64_t n) {
  std::vector<double> w(static_cast<size_t>(n));
  REQUIRE(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', n, a.data(), n, w.data()) == 0);
  return w;
}

// Explicit matrices, one per sample: the reference for the norm algorithms.
class MatrixJacobian final : public BatchJacobian {
 public:
  MatrixJacobian(std::vector<double> matrices, int64_t batch, int64_t n)
      : a_(std::move(matrices)), batch_(batch), n_(n) {}
  int64_t batch() const override { return batch_; }
  int64_t dim() const override { return n_; }
  std::vector<double> apply(const std::vector<double>& v) override { return multiply(v, false); }
  std::vector<double> adjoint(const std::vector<double>& u) override { return multiply(u, true); }
  const double* matrix(int64_t i) const { return a_.data() + i * n_ * n_; }

 private:
  std::vector<double> multiply(const std::vector<double>& v, bool transpose) const {
    check_input(v, "MatrixJacobian");
    std::vector<double> out(v.size(), 0.0);
    for (int64_t i = 0; i < batch_; ++i)
      for (int64_t r = 0; r < n_; ++r)
        for (int64_t c = 0; c < n_; ++c)
          out[i * n_ + r] +=
              (transpose ? matrix(i)[c * n_ + r] : matrix(i)[r * n_ + c]) * v[i * n_ + c];
    return out;
  }
  std::vector<double> a_;
  int64_t batch_, n_;
};

// Per sample: |<J v, u> - <v, J^T u>| <= tolerance ||J v|| ||u||, and J v by the finite
// difference against the Jacobian assembled from n VJPs (its rows J^T e_k).
void check_adjoint(BatchJacobian& jacobian, Rng& rng, double tolerance) {
  const int64_t rows = jacobian.batch(), n = jacobian.dim();
  const std::vector<double> v = random_vector(static_cast<size_t>(rows * n), rng);
  const std::vector<double> u = random_vector(static_cast<size_t>(rows * n), rng);
  const std::vector<double> jv = jacobian.apply(v), jtu = jacobian.adjoint(u);
  for (int64_t i = 0; i < rows; ++i) {
    const double lhs = dot(jv.data() + i * n, u.data() + i * n, n);
    const double rhs = dot(v.data() + i * n, jtu.data() + i * n, n);
    const double scale = std::sqrt(dot(jv.data() + i * n, jv.data() + i * n, n) *
                                   dot(u.data() + i * n, u.data() + i * n, n));
    INFO("sample " << i << ": <Jv, u> = " << lhs << ", <v, J^T u> = " << rhs);
    CHECK(std::abs(lhs - rhs) <= tolerance * scale);
  }
  std::vector<double> assembled(static_cast<size_t>(rows * n), 0.0);
  for (int64_t k = 0; k < n; ++k) {
    std::vector<double> e(static_cast<size_t>(rows * n), 0.0);
    for (int64_t i = 0; i < rows; ++i) e[i * n + k] = 1.0;
    const std::vector<double> row = jacobian.adjoint(e);  // row k of every sample's J
    for (int64_t i = 0; i < rows; ++i)
      assembled[i * n + k] = dot(row.data() + i * n, v.data() + i * n, n);
  }
  for (int64_t i = 0; i < rows; ++i) {
    double error = 0, norm = 0;
    for (int64_t k = 0; k < n; ++k) {
      error = std::max(error, std::abs(assembled[i * n + k] - jv[i * n + k]));
      norm = std::max(norm, std::abs(jv[i * n + k]));
    }
    INFO("sample " << i << ": finite-difference J v against the VJP-assembled Jacobian");
    CHECK(error <= tolerance * std::max(norm, 1e-3));
  }
}

// One Gaussian N(m, C) as a GMM.
datasets::Gmm gaussian_prior(Rng& rng, int64_t n) {
  datasets::Gmm g;
  g.dim = n;
  g.components = 1;
  g.weights = {1.0};
  for (int64_t i = 0; i < n; ++i) g.means.push_back(0.3 * rng.normal());
  g.covariances = dpm::testing::random_spd(rng, n, 0.1);
  return g;
}

// Eigenvalues of J_t = (I - beta_t S^-1) / sqrt(alpha_t), S = abar C + (1 - abar) I, from those
// of C: J_t shares C's eigenvectors.
std::vector<double> gaussian_step_eigenvalues(const Schedule& s, int64_t t,
                                              const std::vector<double>& c_eigenvalues) {
  std::vector<double> out;
  for (double lambda : c_eigenvalues)
    out.push_back((1 - s.beta(t) / (s.abar(t) * lambda + 1 - s.abar(t))) / std::sqrt(s.alpha(t)));
  return out;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

}  // namespace

TEST_CASE("network JVP (central difference) and VJP (tape) are adjoint", "[audit][jacobian]") {
  const Schedule schedule = Schedule::paper_linear(20);
  Rng rng(11);
  struct Case {
    const char* name;
    std::shared_ptr<nn::NoiseModel> model;
    Shape shape;
    PredictionTarget target;
  };
  for (const Case& c : {Case{"mlp", small_mlp(6, 1), Shape{3, 6}, PredictionTarget::eps},
                        Case{"mlp predicting v", small_mlp(6, 3), Shape{3, 6}, PredictionTarget::v},
                        Case{"unet1d", small_unet(2), Shape{3, 1, 8}, PredictionTarget::eps}}) {
    NetworkPredictor network(c.model, schedule, {.target = c.target});
    std::vector<int64_t> dims = c.shape.vec();
    dims.erase(dims.begin());
    const CertifiedBounds certified = certify_network(network, Shape(dims));
    REQUIRE(certified.available);
    for (int64_t t : {1, 7, 20}) {
      INFO(c.name << " at t = " << t);
      const DoubleBatch x = random_batch(c.shape, rng);
      auto eps = std::make_shared<NetworkEpsJacobian>(network, t, x);
      check_adjoint(*eps, rng, 1e-3);
      check_adjoint(*mean_jacobian(eps, schedule, t), rng, 1e-3);
      // The measured norms stay below the certified bounds, whatever the network predicts.
      CHECK(top_singular_value(*eps, {}).max() <= certified.eps[t]);
      CHECK(top_singular_value(*mean_jacobian(eps, schedule, t), {}).max() <= certified.mean[t]);
      // Rebuilding the graph per product gives the same J^T u as keeping it.
      NetworkEpsJacobian rebuilt(network, t, x, /*keep_graph=*/false);
      const std::vector<double> u = random_vector(x.values.size(), rng);
      CHECK(rebuilt.adjoint(u) == eps->adjoint(u));
      CHECK(rebuilt.adjoint(u) == eps->adjoint(u));
    }
    // The audit leaves the model as it found it: training mode, parameters requiring grad.
    CHECK(c.model->is_training());
    for (const Variable& p : c.model->parameters()) CHECK(p.requires_grad());
  }
}

TEST_CASE("Krylov norms match the SVD of explicit matrices, for every affine combination",
          "[audit][jacobian]") {
  Rng rng(21);
  const int64_t batch = 4, n = 12;
  std::vector<double> matrices = random_vector(static_cast<size_t>(batch * n * n), rng);
  // Sample 1: two nearly equal top singular values, the hard case for plain power iteration.
  for (int64_t e = 0; e < n * n; ++e) matrices[n * n + e] = 0.0;
  for (int64_t k = 0; k < n; ++k) matrices[n * n + k * n + k] = k == 0 ? 3.0 : k == 1 ? 2.999 : 1.0;
  MatrixJacobian jacobian(matrices, batch, n);
  const double a = 1.3, b = -0.4;
  const std::vector<TopSingularValues> norms = top_singular_values(
      jacobian, {AffineCombination{}, AffineCombination{a, b}},
      KrylovSettings{
          .tolerance = 1e-12, .min_iterations = 3, .max_iterations = 100, .max_subspace = 100});
  for (int64_t i = 0; i < batch; ++i) {
    const std::vector<double> m(jacobian.matrix(i), jacobian.matrix(i) + n * n);
    std::vector<double> affine = m;
    for (double& v : affine) v *= b;
    for (int64_t k = 0; k < n; ++k) affine[k * n + k] += a;
    INFO("sample " << i);
    CHECK(norms[0].sigma[i] == Approx(largest_singular_value(m, n)).epsilon(1e-10));
    CHECK(norms[1].sigma[i] == Approx(largest_singular_value(affine, n)).epsilon(1e-10));
    // The reported direction attains sigma.
    std::vector<double> v(static_cast<size_t>(batch * n), 0.0);
    std::copy_n(norms[0].direction.data() + i * n, n, v.data() + i * n);
    const std::vector<double> jv = jacobian.apply(v);
    CHECK(std::sqrt(dot(jv.data() + i * n, jv.data() + i * n, n)) ==
          Approx(norms[0].sigma[i]).epsilon(1e-9));
  }
  // The full subspace (n directions) is reached at most: then the values are exact.
  CHECK(norms[0].iterations <= n);

  // Forward iteration (J v only) stays below the norm, and reaches it for a symmetric PSD map.
  std::vector<double> psd(static_cast<size_t>(batch * n * n), 0.0);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c)
        for (int64_t k = 0; k < n; ++k)
          psd[(i * n + r) * n + c] += matrices[(i * n + r) * n + k] * matrices[(i * n + c) * n + k];
  for (int64_t e = 0; e < n * n; ++e) psd[n * n + e] = matrices[n * n + e];  // keep the near tie
  MatrixJacobian symmetric(psd, batch, n);
  const TopSingularValues forward = forward_iteration(symmetric, 400, 5);
  const TopSingularValues general = forward_iteration(jacobian, 5, 5);
  for (int64_t i = 0; i < batch; ++i) {
    const double exact =
        largest_singular_value({symmetric.matrix(i), symmetric.matrix(i) + n * n}, n);
    CHECK(forward.sigma[i] <= exact * (1 + 1e-12));
    CHECK(forward.sigma[i] == Approx(exact).epsilon(1e-3));
    CHECK(general.sigma[i] <=
          largest_singular_value({jacobian.matrix(i), jacobian.matrix(i) + n * n}, n) *
              (1 + 1e-12));
  }
}

TEST_CASE("with eps* of a Gaussian prior the measured stepwise Jacobian norm is the closed form",
          "[audit][oracle]") {
  Rng rng(31);
  const int64_t n = 5;
  const Schedule schedule = Schedule::paper_linear(50);
  const datasets::Gmm prior = gaussian_prior(rng, n);
  GmmOracle oracle(prior, schedule);
  const std::vector<double> c_eigenvalues = symmetric_eigenvalues(prior.covariances, n);
  const DoubleBatch x = random_batch(Shape{3, n}, rng);
  for (int64_t t : {1, 2, 10, 25, 50}) {
    INFO("t = " << t);
    const std::vector<double> j = gaussian_step_eigenvalues(schedule, t, c_eigenvalues);
    const double closed_cme = max_abs(j);
    double closed_eps = 0;
    for (double lambda : c_eigenvalues)
      closed_eps = std::max(closed_eps, std::sqrt(1 - schedule.abar(t)) /
                                            (schedule.abar(t) * lambda + 1 - schedule.abar(t)));

    // Measured: Krylov norms with the finite-difference J v of eps* and its exact J^T u.
    auto eps = std::make_shared<OracleEpsJacobian>(oracle, t, x);
    const KrylovSettings settings{.tolerance = 1e-10, .min_iterations = 3, .max_iterations = 20};
    const TopSingularValues measured_eps = top_singular_value(*eps, settings);
    const TopSingularValues measured_cme =
        top_singular_value(*mean_jacobian(eps, schedule, t), settings);
    for (int64_t i = 0; i < 3; ++i) {
      CHECK(measured_eps.sigma[i] == Approx(closed_eps).epsilon(1e-6));
      CHECK(measured_cme.sigma[i] == Approx(closed_cme).epsilon(1e-6));
    }
    check_adjoint(*mean_jacobian(eps, schedule, t), rng, 1e-6);

    // Exact: one eigen-solve per point, and the oracle's own norm.
    const ExactStepNorms exact = exact_step_norms(oracle, x.values, t);
    const std::vector<double> reference = oracle.stepwise_jacobian_norm(x.values, t);
    for (int64_t i = 0; i < 3; ++i) {
      CHECK(exact.eps[i] == Approx(closed_eps).epsilon(1e-10));
      CHECK(exact.cme[i] == Approx(closed_cme).epsilon(1e-10));
      CHECK(reference[i] == Approx(closed_cme).epsilon(1e-10));
    }
    // The hyperparameter bounds bracket it: c_t <= ||J_t|| <= 1/sqrt(alpha_t) (a Gaussian is
    // log-concave).
    CHECK(closed_cme >= stepwise_cme_lower_bound(schedule, t) * (1 - 1e-12));
    CHECK(closed_cme <= stepwise_cme_log_concave_bound(schedule, t) * (1 + 1e-12));
  }

  // The oracle denoiser: J_D* = s prod_t J_t, all diagonal in C's eigenbasis.
  for (int64_t start : {1, 7, 30}) {
    const double s = 0.8;
    std::vector<double> product(c_eigenvalues.size(), s);
    for (int64_t t = 1; t <= start; ++t) {
      const std::vector<double> j = gaussian_step_eigenvalues(schedule, t, c_eigenvalues);
      for (size_t k = 0; k < j.size(); ++k) product[k] *= j[k];
    }
    const double closed = max_abs(product);
    INFO("start step " << start);
    for (double norm : exact_denoiser_norms(oracle, x.values, start, s))
      CHECK(norm == Approx(closed).epsilon(1e-10));
    // The denoiser's log-concave bound holds.
    CHECK(closed <= denoiser_log_concave_bound(schedule, start, s) * (1 + 1e-12));
  }
}

TEST_CASE(
    "hyperparameter bounds: c_t holds for every prior, 1/sqrt(alpha_t) fails off "
    "log-concavity",
    "[audit][bounds]") {
  const Schedule schedule = Schedule::paper_linear(300);
  for (int64_t t : {1, 2, 50, 300}) {
    const double expected =
        std::sqrt(schedule.alpha(t)) * (1 - schedule.abar(t - 1)) / (1 - schedule.abar(t));
    CHECK(stepwise_cme_lower_bound(schedule, t) == Approx(expected).epsilon(1e-14));
    CHECK(stepwise_cme_log_concave_bound(schedule, t) == 1 / std::sqrt(schedule.alpha(t)));
    CHECK(mean_lipschitz_bound(schedule, t, 2.0) ==
          Approx((1 + schedule.beta(t) / std::sqrt(1 - schedule.abar(t)) * 2.0) /
                 std::sqrt(schedule.alpha(t)))
              .epsilon(1e-14));
  }
  CHECK(stepwise_cme_lower_bound(schedule, 1) == 0.0);
  CHECK(denoiser_log_concave_bound(schedule, 40, 0.5) == 0.5 / std::sqrt(schedule.abar(40)));

  // A separated mixture: every ||J_t(x)|| is at least c_t.
  Rng rng(41);
  GmmOracle mixture(dpm::testing::random_mixture(rng, 3, 4, 1.5), schedule);
  const std::vector<double> points = dpm::testing::normal_rows(rng, 200, 3, 1.5);
  for (int64_t t : {2, 10, 50, 100, 300}) {
    const ExactStepNorms exact = exact_step_norms(mixture, points, t);
    INFO("t = " << t);
    CHECK(*std::min_element(exact.cme.begin(), exact.cme.end()) >=
          stepwise_cme_lower_bound(schedule, t) * (1 - 1e-9));
  }

  // A wide Gaussian N(0, 10^4 I) attains 1/sqrt(alpha_t) up to 1 - beta_t / (abar_t 10^4 + ...).
  datasets::Gmm wide;
  wide.dim = 2;
  wide.components = 1;
  wide.weights = {1.0};
  wide.means = {0.0, 0.0};
  wide.covariances = {1e4, 0.0, 0.0, 1e4};
  GmmOracle wide_oracle(wide, schedule);
  for (int64_t t : {1, 100, 300}) {
    const double norm = exact_step_norms(wide_oracle, {0.3, -0.2}, t).cme[0];
    const double bound = stepwise_cme_log_concave_bound(schedule, t);
    CHECK(norm <= bound * (1 + 1e-12));
    CHECK(norm >= bound * (1 - 1e-3));
  }

  // docs/protocol.md, Lipschitz facts: on 0.5 N(-1, 0.05) + 0.5 N(1, 0.05) the exact ||J_t||
  // exceeds 1/sqrt(alpha_t) between the modes (1.12 vs 1.003 at t = 50). At x = 0 the
  // responsibilities are equal and Hess log p_t = a^2 / v^2 - 1 / v, a = sqrt(abar_t),
  // v = 0.05 abar_t + 1 - abar_t.
  datasets::Gmm two_modes;
  two_modes.dim = 1;
  two_modes.components = 2;
  two_modes.weights = {0.5, 0.5};
  two_modes.means = {-1.0, 1.0};
  two_modes.covariances = {0.05, 0.05};
  GmmOracle bimodal(two_modes, schedule);
  for (int64_t t : {10, 25, 50, 75, 100, 150}) {
    INFO("t = " << t);
    const double abar = schedule.abar(t), v = 0.05 * abar + 1 - abar;
    const double closed =
        (1 + schedule.beta(t) * (abar / (v * v) - 1 / v)) / std::sqrt(schedule.alpha(t));
    const double norm = exact_step_norms(bimodal, {0.0}, t).cme[0];
    CHECK(norm == Approx(closed).epsilon(1e-10));
    const double bound = stepwise_cme_log_concave_bound(schedule, t);
    if (t <= 100)
      CHECK(norm > bound);
    else
      CHECK(norm < bound);  // the modes have merged at x = 0: Hess log p_t(0) < 0
  }
  CHECK(exact_step_norms(bimodal, {0.0}, 50).cme[0] == Approx(1.1244).epsilon(1e-4));
}

TEST_CASE("audit: empirical lower bounds stay below the certified upper bounds", "[audit]") {
  const Schedule schedule = Schedule::paper_linear(20);
  Rng rng(51);
  AuditPlan settings;
  settings.t_grid = {{1, 3, 10, 20}};
  settings.snr = {0, 10};
  settings.samples = 5;
  settings.denoiser_samples = 2;
  settings.oracle_samples = 64;
  settings.tolerance = 1e-4;
  settings.seed = 3;
  report::NullProgress quiet;

  SECTION("residual MLP on a GMM, with the exact maps") {
    const int64_t n = 6;
    NetworkPredictor network(small_mlp(n, 4), schedule);
    GmmOracle oracle(dpm::testing::random_mixture(rng, n, 3, 1.0), schedule);
    datasets::Gmm prior = oracle.prior();
    const AuditInputs inputs{&network, Shape{n}, prior.sample(32, rng), "GMM draws", &oracle};
    // The progress counts the plan's units: the layer norms, each step of the grid, each SNR.
    struct Counting final : report::Progress {
      int64_t total = -1, advanced = 0;
      void begin(int64_t units) override { total = units; }
      void advance(const std::string&) override { ++advanced; }
    } progress;
    const LipschitzAudit audit = run_lipschitz_audit(settings, inputs, progress);
    const std::vector<AuditUnit> units = settings.units(schedule);
    CHECK(progress.total == static_cast<int64_t>(units.size()));
    CHECK(progress.advanced == progress.total);
    CHECK(units.size() == 1 + audit.steps.size() + audit.denoisers.size());
    REQUIRE(audit.certified.available);
    // The grid holds the steps and every SNR's start step.
    std::vector<int64_t> audited;
    for (const StepAudit& s : audit.steps) audited.push_back(s.t);
    for (const DenoiserAudit& d : audit.denoisers)
      CHECK(std::find(audited.begin(), audited.end(), d.start_step) != audited.end());
    for (const StepAudit& s : audit.steps) {
      INFO("t = " << s.t);
      CHECK(s.eps_converged == settings.samples);
      CHECK(s.empirical_eps.max <= s.certified_eps);
      CHECK(s.empirical_mean.max <= s.certified_mean);
      CHECK(std::max(s.eps_nearby, s.eps_random) <= s.certified_eps);
      CHECK(std::max(s.mean_nearby, s.mean_random) <= s.certified_mean);
      // The nearby pair along the measured direction sees about the measured norm.
      CHECK(s.eps_nearby == Approx(s.empirical_eps.max).epsilon(0.1));
      REQUIRE(s.exact);
      CHECK(s.exact_cme_population.count == settings.oracle_samples);
      if (s.t > 1) CHECK(s.lower_min_ratio >= 1 - 1e-9);
    }
    for (const DenoiserAudit& d : audit.denoisers) {
      INFO("SNR " << d.snr_db << " dB");
      CHECK(std::log10(d.empirical.max) <= d.log10_certified);
      CHECK(std::log10(d.pairwise_random) <= d.log10_certified);
      CHECK(d.network_evaluations == d.start_step * (1 + settings.denoiser_iterations));
      REQUIRE(d.exact);
      // The forward iteration never finds more than the exact norm of D*.
      CHECK(d.oracle_forward_ratio.max <= 1 + 1e-6);
      CHECK(d.oracle_forward_ratio_min > 0);
    }
    const nlohmann::json json = report::to_json(audit);
    CHECK(json.at("steps").size() == audit.steps.size());
    CHECK(json.at("legend").contains("certified"));
    CHECK(json.at("certified").at("eps_by_t").size() == 20);
    // Krylov norms of the whole denoiser: the subspace fills R^6 within 6 iterations, so the
    // method finds D*'s exact norm (up to the finite differences).
    AuditPlan krylov = settings;
    krylov.t_grid = {{1}};
    krylov.denoiser_method = DenoiserMethod::krylov;
    krylov.denoiser_iterations = n;
    for (const DenoiserAudit& d : run_lipschitz_audit(krylov, inputs, quiet).denoisers) {
      INFO("Krylov, SNR " << d.snr_db << " dB");
      CHECK(d.oracle_forward_ratio_min == Approx(1).epsilon(1e-5));
      CHECK(d.oracle_forward_ratio.max == Approx(1).epsilon(1e-5));
      CHECK(std::log10(d.empirical.max) <= d.log10_certified);
    }
    const std::string markdown = report::markdown(audit);
    CHECK_THAT(markdown, Catch::Contains("## The exact stepwise CME") && Catch::Contains("|---|") &&
                             Catch::Contains("log-concave"));
  }

  SECTION("U-Net without a GMM") {
    NetworkPredictor network(small_unet(6), schedule);
    const AuditInputs inputs{&network, Shape{1, 8}, randn({16, 1, 8}, rng), "N(0, I)", nullptr};
    const LipschitzAudit audit = run_lipschitz_audit(settings, inputs, quiet);
    REQUIRE(audit.certified.available);
    for (const StepAudit& s : audit.steps) {
      INFO("t = " << s.t);
      CHECK_FALSE(s.exact);
      CHECK(s.empirical_eps.max > 0);
      CHECK(s.empirical_eps.max <= s.certified_eps);
      CHECK(s.empirical_mean.max <= s.certified_mean);
    }
    for (const DenoiserAudit& d : audit.denoisers)
      CHECK(std::log10(d.empirical.max) <= d.log10_certified);
  }
}

// The PlanError `fn` throws names `field`.
template <typename F>
void check_plan_error(const std::string& field, F&& fn) {
  INFO("field " << field);
  try {
    fn();
    FAIL("no PlanError");
  } catch (const PlanError& e) {
    CHECK(e.field() == field);
  }
}

TEST_CASE("audit plan: JSON round trip, validation naming the field, its units", "[audit][plan]") {
  AuditPlan plan;
  plan.checkpoint = "runs/train/best.safetensors";
  plan.t_grid = {{1, 10, 100}};
  plan.snr = {-10, -5, 0, 5, 10};
  plan.start = AuditStart::t_hat_minus_1;
  plan.samples = 8;
  plan.denoiser_samples = 2;
  plan.tolerance = 1e-4;
  plan.denoiser_method = DenoiserMethod::krylov;
  plan.seed = 12;
  const nlohmann::json json = plan.to_json();
  CHECK(json.at("start") == "t_hat-1");
  CHECK(json.at("denoiser_method") == "krylov");
  CHECK(json.at("snr") == nlohmann::json::array({-10.0, -5.0, 0.0, 5.0, 10.0}));
  CHECK(json.at("t_grid") == nlohmann::json::array({1, 10, 100}));
  const AuditPlan back = AuditPlan::from_json(json);
  CHECK(back.to_json() == json);
  CHECK(back.start == AuditStart::t_hat_minus_1);
  CHECK(back.steps(100) == std::vector<int64_t>{1, 10, 100});
  CHECK(AuditPlan::from_json(nlohmann::json::object()).to_json() == AuditPlan{}.to_json());
  CHECK(AuditPlan{}.to_json().at("t_grid") == "auto");
  // The text forms of older config files read as the typed lists.
  const AuditPlan texts =
      AuditPlan::from_json({{"t_grid", "1,10,100"}, {"snr", "-10:10:5"}, {"start", "t_hat-1"}});
  CHECK(texts.t_grid == back.t_grid);
  CHECK(texts.snr == back.snr);
  CHECK(AuditPlan::from_json({{"t_grid", "auto"}}).t_grid.is_auto());

  check_plan_error("t_grid", [&] { AuditPlan::from_json({{"t_grid", "0,5"}}); });
  check_plan_error("t_grid", [&] { AuditPlan::from_json({{"t_grid", "every"}}); });
  check_plan_error("t_grid", [&] { plan.steps(50); });  // 100 is beyond T = 50
  check_plan_error("snr", [&] { AuditPlan::from_json({{"snr", "loud"}}); });
  check_plan_error("start", [&] { AuditPlan::from_json({{"start", "t_hat+1"}}); });
  check_plan_error("denoiser_samples", [&] {
    AuditPlan::from_json({{"samples", 2}, {"denoiser_samples", 3}});
  });
  check_plan_error("max_iterations", [&] { AuditPlan::from_json({{"max_iterations", 2}}); });
  check_plan_error("tolerance", [&] { AuditPlan::from_json({{"tolerance", 2.0}}); });
  check_plan_error("oracle_samples", [&] { AuditPlan::from_json({{"oracle_samples", 0}}); });
  check_plan_error("steps", [&] { AuditPlan::from_json({{"steps", "1,2"}}); });  // unknown
  check_plan_error("checkpoint", [&] { read_inputs(AuditPlan{}); });

  // The units: the layer norms, the auto grid for T = 20 (1, 2, 5, 10, 20) with each SNR's start
  // step added, one per SNR.
  AuditPlan grid;
  grid.snr = {0, 10};
  const Schedule schedule = Schedule::paper_linear(20);
  const std::vector<AuditUnit> units = grid.units(schedule);
  std::vector<int64_t> steps;
  int64_t certify = 0, denoisers = 0;
  for (const AuditUnit& unit : units) {
    if (unit.kind == AuditUnit::Kind::certify) ++certify;
    if (unit.kind == AuditUnit::Kind::step) steps.push_back(unit.t);
    if (unit.kind == AuditUnit::Kind::denoiser) ++denoisers;
  }
  CHECK(certify == 1);
  CHECK(denoisers == 2);
  std::vector<int64_t> expected = {1, 2, 5, 10, 20};
  for (double snr_db : {0.0, 10.0}) {
    const int64_t start = schedule.nearest_step(std::pow(10.0, snr_db / 10));
    if (std::find(expected.begin(), expected.end(), start) == expected.end())
      expected.push_back(start);
  }
  std::sort(expected.begin(), expected.end());
  CHECK(steps == expected);
}

TEST_CASE("audit report: the summary first, a vacuous certified bound as a power of ten",
          "[audit][report]") {
  LipschitzAudit audit;
  audit.plan.snr = {0};
  audit.requested_steps = {1};
  audit.network = {{"arch", "mlp"}};
  audit.target = "eps";
  audit.schedule = {{"T", 1}};
  audit.cme_lower_by_t = {0.0};
  audit.cme_log_concave_by_t = {1.0};
  audit.sample_shape = Shape{2};
  audit.certified.available = true;
  audit.certified.eps = audit.certified.mean = {0.0, 10.0};
  StepAudit step;
  step.t = 1;
  step.certified_eps = step.certified_mean = 10;
  step.empirical_eps = step.empirical_mean = PointStatistics::of({2.0, 1.0});
  step.cme_log_concave_upper = 1;
  audit.steps = {step};
  DenoiserAudit denoiser;
  denoiser.empirical = PointStatistics::of({0.5});
  denoiser.log10_certified = 1510.9;
  denoiser.start_step = 1;
  denoiser.scale = 0.5;
  audit.denoisers = {denoiser};

  const std::string markdown = report::markdown(audit);
  CHECK_THAT(markdown, Catch::Contains("> 1e300 (10^1510.9)") && !Catch::Contains("e+1510"));
  // The summary: the network reaches 2 / 10 of its certified bound; no exact values.
  const size_t summary = markdown.find("Empirical / certified");
  REQUIRE(summary != std::string::npos);
  CHECK_THAT(markdown.substr(summary, 200), Catch::Contains("eps_theta 0.2 (loosest at t = 1)"));
  CHECK(summary < markdown.find("## The network at each step"));
  CHECK_THAT(markdown, Catch::Contains("Exact values: none"));
  // The legend is written once, for both: every JSON legend entry is in the markdown.
  const nlohmann::json legend = report::to_json(audit).at("legend");
  REQUIRE(legend.size() == 10);
  for (const auto& [kind, text] : legend.items())
    CHECK_THAT(markdown, Catch::Contains("**" + kind + "**: " + text.get<std::string>()));
}

TEST_CASE("dpmlab audit runs end to end on a tiny checkpoint", "[audit][cli]") {
  const fs::path dpmlab =
      fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "apps" / "dpmlab";
  INFO("needs the dpmlab binary beside the tests: " << dpmlab.string());
  REQUIRE(fs::exists(dpmlab));
  TempDir dir("dpm_test_audit");

  // A tiny GMM, its samples, and a few training steps of a small MLP on them.
  Rng rng(61);
  const datasets::Gmm gmm = dpm::testing::random_mixture(rng, 4, 2, 1.0);
  datasets::save_gmm(gmm, dir.file("gmm.safetensors"));
  const Tensor train = gmm.sample(256, rng), test = gmm.sample(64, rng);
  write_safetensors(dir.file("data.safetensors"), {{"train", train}, {"test", test}});
  train::DpmTrainingConfig config;
  config.model = {
      {"arch", "mlp"}, {"dim", 4}, {"width", 16}, {"depth", 1}, {"time_embedding_size", 8}};
  config.schedule = Schedule::paper_linear(20).to_json();
  config.trainer.batch_size = 32;
  config.trainer.max_steps = 3;
  config.trainer.progress = false;
  config.trainer.out_dir = dir.file("train");
  train::train_dpm(config, train, test);
  REQUIRE(fs::exists(dir.file("train/best.safetensors")));

  const std::string out = dir.file("audit");
  const std::string command =
      dpmlab.string() + " audit " + dir.file("train/best.safetensors") + " --gmm " +
      dir.file("gmm.safetensors") + " --data " + dir.file("data.safetensors") +
      " --snr 0:10:10 --samples 4 --denoiser-samples 2 "
      "--oracle-samples 32 --threads 1 --quiet --out " +
      out + " > " + dir.file("stdout.txt") + " 2> " + dir.file("stderr.txt");
  const int status = std::system(command.c_str());
  std::ifstream err(dir.file("stderr.txt"));
  const std::string stderr_text((std::istreambuf_iterator<char>(err)), {});
  INFO("stderr: " << stderr_text);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  // --quiet: the files written, not the report.
  std::ifstream stdout_file(dir.file("stdout.txt"));
  const std::string printed((std::istreambuf_iterator<char>(stdout_file)), {});
  CHECK_THAT(printed, Catch::Contains("Wrote audit.md, audit.json") &&
                          !Catch::Contains("# Lipschitz audit"));
  std::ifstream markdown_file(out + "/audit.md");
  const std::string markdown((std::istreambuf_iterator<char>(markdown_file)), {});
  CHECK_THAT(markdown, Catch::Contains("exact stepwise CME") && Catch::Contains("certified"));
  std::ifstream json_file(out + "/audit.json");
  REQUIRE(json_file);
  const nlohmann::json json = nlohmann::json::parse(json_file);
  // auto grid for T = 20: 1, 2, 5, 10, 20; plus the SNRs' start steps.
  CHECK(json.at("steps").size() >= 5);
  CHECK(json.at("denoisers").size() == 2);
  for (const auto& step : json.at("steps")) {
    CHECK(step.at("empirical").at("eps").at("max").get<double>() <=
          step.at("certified").at("eps").get<double>());
    CHECK_FALSE(step.at("exact").is_null());
  }
  CHECK(fs::exists(out + "/config.used.json"));
  for (const char* plot :
       {"lipschitz_eps", "lipschitz_mean", "lipschitz_cme", "lipschitz_denoiser"}) {
    INFO(plot);
    CHECK(fs::exists(out + "/" + plot + ".gp"));
    // The PNG needs gnuplot, which the command warns about when it is missing.
    if (stderr_text.find("gnuplot not found") == std::string::npos)
      CHECK(fs::exists(out + "/" + plot + ".png"));
  }

  // A bad flag is a usage error (exit code 2) naming it.
  const int bad =
      std::system((dpmlab.string() + " audit " + dir.file("train/best.safetensors") +
                   " --t-grid 0,5 --out " + out + " > /dev/null 2> " + dir.file("bad.txt"))
                      .c_str());
  REQUIRE(WIFEXITED(bad));
  CHECK(WEXITSTATUS(bad) == 2);
  std::ifstream bad_file(dir.file("bad.txt"));
  CHECK_THAT(std::string((std::istreambuf_iterator<char>(bad_file)), {}),
             Catch::Contains("--t-grid"));
}
