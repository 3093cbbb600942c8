#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoise_bench.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/sampler.hpp"
#include "diffusion/schedule.hpp"
#include "experiments/denoise_bench_report.hpp"
#include "oracle_fixtures.hpp"

using dpm::Rng;
using dpm::Tensor;
using dpm::datasets::Gmm;
using dpm::diffusion::denoise;
using dpm::diffusion::Denoised;
using dpm::diffusion::DoubleBatch;
using dpm::diffusion::Estimator;
using dpm::diffusion::EstimatorKind;
using dpm::diffusion::GmmOracle;
using dpm::diffusion::NoisePredictor;
using dpm::diffusion::ReverseKind;
using dpm::diffusion::ReverseProcess;
using dpm::diffusion::ReverseVariance;
using dpm::diffusion::run_reverse;
using dpm::diffusion::Schedule;

namespace {

// eps = 0.3 x + 0.01 t: cheap and deterministic, for the plumbing tests (float path only, like a
// network).
class LinearPredictor : public NoisePredictor {
  Tensor compute_eps(const Tensor& x, int64_t t) override {
    Tensor out = Tensor::empty(x.shape());
    const float* in = x.data();
    for (int64_t i = 0; i < x.numel(); ++i)
      out.data()[i] = 0.3f * in[i] + 0.01f * static_cast<float>(t);
    return out;
  }
};

DoubleBatch random_batch(Rng& rng, int64_t rows, int64_t n) {
  return DoubleBatch::from_rows(dpm::testing::normal_rows(rng, rows, n, 1.0), rows, n);
}

}  // namespace

TEST_CASE("reverse processes call back once per step, in order, one evaluation each", "[sampler]") {
  Schedule schedule = Schedule::paper_linear(50);
  LinearPredictor predictor;
  Rng rng(1);
  DoubleBatch x0 = random_batch(rng, 5, 3);
  for (ReverseKind kind :
       {ReverseKind::mean_forwarding, ReverseKind::ancestral, ReverseKind::ddim}) {
    ReverseProcess process;
    process.kind = kind;
    process.eta = 0.5;
    std::vector<int64_t> steps;
    predictor.reset_evaluations();
    DoubleBatch last;
    DoubleBatch out = run_reverse(process, predictor, schedule, x0, 17, rng,
                                  [&](int64_t t, const DoubleBatch& x) {
                                    steps.push_back(t);
                                    last = x;
                                  });
    std::vector<int64_t> expected;
    for (int64_t t = 17; t >= 1; --t) expected.push_back(t);
    CHECK(steps == expected);
    CHECK(predictor.evaluations() == 17);
    CHECK(last.values == out.values);  // the last callback sees x_0
    CHECK(out.shape == x0.shape);
  }
  // Starting at step 0 runs nothing.
  std::vector<int64_t> none;
  DoubleBatch same = run_reverse({}, predictor, schedule, x0, 0, rng,
                                 [&](int64_t t, const DoubleBatch&) { none.push_back(t); });
  CHECK(none.empty());
  CHECK(same.values == x0.values);
  CHECK_THROWS_WITH(run_reverse({}, predictor, schedule, x0, 51, rng),
                    Catch::Contains("t_start must be in 0..50, got 51"));
}

TEST_CASE("mean forwarding applies mu_theta, DDIM eta = 0 is deterministic, ancestral repeats",
          "[sampler]") {
  Schedule schedule = Schedule::paper_linear(30);
  LinearPredictor predictor;
  Rng data_rng(2);
  DoubleBatch x = random_batch(data_rng, 4, 6);

  // One mean-forwarding step is exactly (x - beta / sqrt(1 - abar) eps) / sqrt(alpha).
  Rng rng(3);
  DoubleBatch one = run_reverse({}, predictor, schedule, x, 1, rng);
  std::vector<double> eps = predictor.predict_eps(x, 1).values;
  for (size_t i = 0; i < x.values.size(); ++i)
    CHECK(one.values[i] ==
          Approx((x.values[i] - schedule.beta(1) / std::sqrt(1 - schedule.abar(1)) * eps[i]) /
                 std::sqrt(schedule.alpha(1)))
              .epsilon(1e-14));

  ReverseProcess ddim{ReverseKind::ddim, ReverseVariance::beta_tilde, 0.0, {}};
  Rng a(10), b(99);
  const Rng::State a_before = a.state();
  DoubleBatch first = run_reverse(ddim, predictor, schedule, x, 30, a);
  CHECK(run_reverse(ddim, predictor, schedule, x, 30, b).values == first.values);
  CHECK(a.state() == a_before);  // eta = 0 draws no noise

  ReverseProcess ancestral{ReverseKind::ancestral, ReverseVariance::beta, 0.0, {}};
  Rng c(7), d(7), e(8);
  DoubleBatch run_c = run_reverse(ancestral, predictor, schedule, x, 30, c);
  CHECK(run_reverse(ancestral, predictor, schedule, x, 30, d).values == run_c.values);
  CHECK(run_reverse(ancestral, predictor, schedule, x, 30, e).values != run_c.values);

  // DDIM with eta = 1 is the ancestral process with sigma_t^2 = beta~_t: same noise, same path.
  ReverseProcess ddim_1{ReverseKind::ddim, ReverseVariance::beta_tilde, 1.0, {}};
  ReverseProcess ancestral_posterior{ReverseKind::ancestral, ReverseVariance::beta_tilde, 0.0, {}};
  Rng f(5), g(5);
  DoubleBatch via_ddim = run_reverse(ddim_1, predictor, schedule, x, 30, f);
  DoubleBatch via_ddpm = run_reverse(ancestral_posterior, predictor, schedule, x, 30, g);
  for (size_t i = 0; i < x.values.size(); ++i)
    CHECK(via_ddim.values[i] == Approx(via_ddpm.values[i]).epsilon(1e-12).margin(1e-12));
}

TEST_CASE("a batch run in parts draws the whole batch's noise: the parts give the whole",
          "[sampler]") {
  Schedule schedule = Schedule::paper_linear(20);
  LinearPredictor predictor;
  Rng data_rng(4);
  const DoubleBatch x = random_batch(data_rng, 5, 3);
  for (ReverseKind kind : {ReverseKind::ancestral, ReverseKind::ddim}) {
    ReverseProcess process;
    process.kind = kind;
    process.eta = 0.7;
    Rng whole_rng(11);
    const DoubleBatch whole = run_reverse(process, predictor, schedule, x, 20, whole_rng);
    std::vector<double> joined;
    for (const auto& [first, rows] : {std::pair<int64_t, int64_t>{0, 2}, {2, 1}, {3, 2}}) {
      process.part = {first, 5};
      Rng part_rng(11);
      const DoubleBatch part = run_reverse(
          process, predictor, schedule,
          DoubleBatch::from_rows(
              {x.values.begin() + first * 3, x.values.begin() + (first + rows) * 3}, rows, 3),
          20, part_rng);
      joined.insert(joined.end(), part.values.begin(), part.values.end());
      CHECK(part_rng.state() == whole_rng.state());  // every part ends where the whole run did
    }
    CHECK(joined == whole.values);
  }
  ReverseProcess ancestral;
  ancestral.kind = ReverseKind::ancestral;
  ancestral.part = {4, 5};
  Rng rng(1);
  CHECK_THROWS_WITH(run_reverse(ancestral, predictor, schedule, x, 20, rng),
                    Catch::Contains("rows 4..9 are not part of a batch of 5"));
  ancestral.part = {1, 0};
  CHECK_THROWS_WITH(run_reverse(ancestral, predictor, schedule, x, 20, rng),
                    Catch::Contains("rows 1..6 are not part of a batch of 0"));
}

TEST_CASE("estimator names round-trip and the SNR matching follows the chosen convention",
          "[denoiser]") {
  for (const char* name : {"mean-forwarding", "tweedie", "ddim", "posterior-mean-M16",
                           "mean-forwarding+authors-offset+db", "posterior-mean-M4+beta"})
    CHECK(Estimator::parse(name).name() == name);
  CHECK(Estimator::parse("posterior-mean-M16").samples == 16);
  CHECK_THROWS_WITH(Estimator::parse("wiener"), Catch::Contains("unknown estimator 'wiener'"));
  CHECK_THROWS_WITH(Estimator::parse("tweedie+beta"), Catch::Contains("unknown option 'beta'"));
  CHECK_THROWS_WITH(Estimator::parse("posterior-mean-M0"), Catch::Contains("positive integer"));

  // docs/protocol.md, The denoiser: at T = 300 the authors' code uses t_hat - 1 network
  // evaluations, about 278 at -20 dB, 107 at 0 dB and 39 at 10 dB; our default starts at t_hat
  // itself.
  Schedule schedule = Schedule::paper_linear(300);
  LinearPredictor predictor;
  Rng rng(1);
  DoubleBatch y = random_batch(rng, 2, 3);
  Estimator ours, authors;
  authors.authors_offset = true;
  for (auto [snr_db, evaluations] : {std::pair{-20.0, 278}, {0.0, 107}, {10.0, 39}}) {
    const double snr = std::pow(10.0, snr_db / 10);
    Denoised a = denoise(authors, y, snr, predictor, schedule, rng);
    Denoised o = denoise(ours, y, snr, predictor, schedule, rng);
    CHECK(a.evaluations == evaluations);
    CHECK(o.evaluations == evaluations + 1);
    CHECK(o.matched_step == a.matched_step);
    CHECK(o.start_step == o.matched_step);
    Estimator tweedie;
    tweedie.kind = EstimatorKind::tweedie;
    CHECK(denoise(tweedie, y, snr, predictor, schedule, rng).evaluations == 1);
  }
  Estimator mc = Estimator::parse("posterior-mean-M3");
  CHECK(denoise(mc, y, 1.0, predictor, schedule, rng).evaluations == 3 * 108);
  CHECK_THROWS_WITH(denoise(ours, y, 0.0, predictor, schedule, rng),
                    Catch::Contains("assumed SNR must be positive"));
}

namespace {

// Forces the float32 path of a predictor (as a trained network would run): the state is rounded
// to float32 before every evaluation and the noise comes back in float32.
class Float32Path : public NoisePredictor {
 public:
  explicit Float32Path(NoisePredictor& inner) : inner_(inner) {}

 private:
  Tensor compute_eps(const Tensor& x, int64_t t) override { return inner_.predict_eps(x, t); }
  NoisePredictor& inner_;
};

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / norm);
}

Estimator estimator(EstimatorKind kind, bool authors_offset = false) {
  Estimator e;
  e.kind = kind;
  e.authors_offset = authors_offset;
  return e;
}

}  // namespace

TEST_CASE("Gaussian prior with eps*: Tweedie and mean forwarding are the CME at the start step",
          "[denoiser]") {
  // Exact statement. Start step t_s, x = sqrt(s / (1 + s)) y (s the observation's SNR). With the
  // exact eps*, one Tweedie step is E[x_0 | x_{t_s} = x] for any prior; for a Gaussian prior every
  // mean-forwarding step f_t(x) = E[x_{t-1} | x_t = x] is affine, so by the tower property their
  // composition from t_s is E[x_0 | x_{t_s} = x] as well. Since x_{t_s} / sqrt(abar_ts) =
  // x_0 + n' with var(n') = 1 / SNR_ts, both equal the CME at noise variance 1 / SNR_ts applied to
  // y' = x / sqrt(abar_ts) = sqrt(s / ((1 + s) abar_ts)) y. When s = SNR_ts (the SNR on the
  // grid) y' = y and this is the CME of the observation itself; off the grid the two differ by
  // the grid mismatch only. All in double, so the agreement is to rounding (~3e-15 observed;
  // checked at 1e-10).
  Rng rng(21);
  const int64_t n = 8, rows = 64;
  Gmm g;
  g.dim = n;
  g.components = 1;
  g.weights = {1.0};
  g.means = dpm::testing::normal_rows(rng, 1, n, 0.5);
  g.covariances = dpm::testing::random_spd(rng, n, 0.1);
  const DoubleBatch y =
      DoubleBatch::from_rows(dpm::testing::normal_rows(rng, rows, n, 1.5), rows, n);
  auto cme = [&](const std::vector<double>& obs, double sigma2) {
    return g.cme(obs, g.factorize(sigma2));
  };

  for (int64_t T : {10, 50, 300}) {
    Schedule schedule = Schedule::paper_linear(T);
    GmmOracle oracle(g, schedule);
    const int64_t on_grid_step = T / 2;
    for (double snr : {0.1, 1.0, 10.0, schedule.snr(on_grid_step)}) {
      for (EstimatorKind kind : {EstimatorKind::mean_forwarding, EstimatorKind::tweedie})
        for (bool offset : {false, true}) {
          Denoised d = denoise(estimator(kind, offset), y, snr, oracle, schedule, rng);
          const int64_t ts = d.start_step;
          REQUIRE(ts >= 1);
          const double abar = schedule.abar(ts);
          std::vector<double> mapped = y.values;
          for (double& v : mapped) v *= std::sqrt(snr / ((1 + snr) * abar));
          INFO("T = " << T << ", SNR = " << snr << ", t_s = " << ts << ", estimator "
                      << estimator(kind, offset).name());
          CHECK(relative_error(d.x_hat.values, cme(mapped, 1 / schedule.snr(ts))) < 1e-10);
        }
    }
    // On the grid, with the default start step, both are the observation's own CME.
    const double snr = schedule.snr(on_grid_step);
    for (EstimatorKind kind : {EstimatorKind::mean_forwarding, EstimatorKind::tweedie})
      CHECK(relative_error(denoise(estimator(kind), y, snr, oracle, schedule, rng).x_hat.values,
                           cme(y.values, 1 / snr)) < 1e-10);
  }

  // The grid mismatch is real: at T = 10, 0 dB is matched to step 5 (-1.56 dB).
  Schedule coarse = Schedule::paper_linear(10);
  GmmOracle oracle(g, coarse);
  Denoised d = denoise(estimator(EstimatorKind::mean_forwarding), y, 1.0, oracle, coarse, rng);
  CHECK(relative_error(d.x_hat.values, cme(y.values, 1.0)) > 1e-3);

  // A float32 network path: x is rounded to float32 (relative 2^-24) before each of the t_hat
  // evaluations and eps comes back rounded. For a Gaussian prior ||J_t|| <= 1 / sqrt(alpha_t)
  // (docs/protocol.md, Lipschitz facts), so a rounding of x_t is amplified by at most
  // 1 / sqrt(abar_{t-1}) on its way to x_0, while x_t itself is ~sqrt(abar_t) times the signal's
  // scale: each step contributes about 2^-24 relative to the output, and the sum stays below
  // t_hat * 2^-24 (6.4e-6 for t_hat = 108; observed ~3e-9, the roundings being independent and
  // mostly contracted).
  Schedule schedule = Schedule::paper_linear(300);
  GmmOracle exact(g, schedule);
  Float32Path network_like(exact);
  Denoised in_double =
      denoise(estimator(EstimatorKind::mean_forwarding), y, 1.0, exact, schedule, rng);
  Denoised in_float =
      denoise(estimator(EstimatorKind::mean_forwarding), y, 1.0, network_like, schedule, rng);
  CHECK(in_float.evaluations == in_double.evaluations);
  const double float_error = relative_error(in_float.x_hat.values, in_double.x_hat.values);
  INFO("float32 path relative error " << float_error);
  CHECK(float_error < static_cast<double>(in_float.evaluations) * 0x1p-24);
  CHECK(float_error > 0.0);
}

TEST_CASE("1-D two-mode GMM with eps*: the reference figures", "[denoiser]") {
  // The prior 0.5 N(-1, 0.05) + 0.5 N(1, 0.05) as it stands (average power 1.05, NOT normalised
  // to 1) with sigma^2 = 10^(-SNR_dB / 10): the reference figures are for the raw mixture. With 2M
  // samples the CME's NMSE is 0.9046 / 0.4470 raw but 0.9087 / 0.4615 normalised at -10 / 0 dB,
  // against the reference 0.900 / 0.450.
  Gmm g;
  g.dim = 1;
  g.components = 2;
  g.weights = {0.5, 0.5};
  g.means = {-1.0, 1.0};
  g.covariances = {0.05, 0.05};
  // T = 50: the reference gives the figures as alike for T = 50..5000, and it keeps the M = 64
  // Monte-Carlo mean (64 * t_hat evaluations) fast.
  Schedule schedule = Schedule::paper_linear(50);
  GmmOracle oracle(g, schedule);
  const int64_t samples = 10000;
  Rng rng(31);
  Tensor x = g.sample(samples, rng);
  dpm::diffusion::DenoiseBenchOptions options;
  options.snr_db = {-10.0, 0.0};
  options.seed = 32;
  for (const char* name : {"mean-forwarding", "tweedie", "posterior-mean-M1", "posterior-mean-M4",
                           "posterior-mean-M16", "posterior-mean-M64"})
    options.estimators.push_back(Estimator::parse(name));
  std::vector<dpm::diffusion::DenoiseBenchEntry> entries =
      dpm::diffusion::run_denoise_bench(g, x, schedule, oracle, options);
  auto find = [&](const std::string& name, double snr_db) {
    for (const auto& e : entries)
      if (e.estimator == name && e.snr_db == snr_db) return e;
    FAIL("no entry " << name << " at " << snr_db << " dB");
    return entries.front();
  };

  // Tolerance. Our figures and the reference's are both Monte-Carlo estimates. Ours carry the
  // standard error se over `samples` test points; the reference's sample count is not stated, so
  // we take the paper's test-set size (10k, docs/protocol.md, The GMM protocol), whose standard
  // error is about se * sqrt(samples / 10k). A figure passes when it is within 3 standard errors of
  // the difference: |ours - reference| <= 3 sqrt(se^2 + se_ref^2).
  const double reference_samples = 10000;
  auto check_figure = [&](const std::string& name, double snr_db, double reference) {
    const auto e = find(name, snr_db);
    const double se_ref = e.nmse_se * std::sqrt(samples / reference_samples);
    INFO(name << " at " << snr_db << " dB: NMSE " << e.nmse << " ± " << e.nmse_se << ", reference "
              << reference);
    CHECK(std::fabs(e.nmse - reference) <= 3 * std::hypot(e.nmse_se, se_ref));
  };
  check_figure("cme", -10, 0.900);
  check_figure("mean-forwarding", -10, 1.349);
  check_figure("cme", 0, 0.450);
  check_figure("mean-forwarding", 0, 0.596);
  check_figure("tweedie", -10, 0.900);
  check_figure("posterior-mean-M1", -10, 1.78);
  check_figure("posterior-mean-M4", -10, 1.11);
  check_figure("posterior-mean-M16", -10, 0.959);
  check_figure("posterior-mean-M64", -10, 0.916);

  // The sharper, paired statements (same observations, so the CME's own error cancels):
  for (double snr_db : {-10.0, 0.0}) {
    INFO("SNR " << snr_db << " dB");
    // Tweedie with eps* is the CME up to the grid mismatch (t_hat's SNR -10.03 / -0.21 dB).
    const auto tweedie = find("tweedie", snr_db);
    CHECK(std::fabs(tweedie.gap) <= 4 * tweedie.gap_se + 1e-4);
    // Mean forwarding is clearly worse than the CME for this non-Gaussian prior.
    const auto forwarding = find("mean-forwarding", snr_db);
    CHECK(forwarding.gap > 10 * forwarding.gap_se);
    // The Monte-Carlo posterior mean approaches the CME as M grows.
    double previous = 1e9;
    for (const char* name :
         {"posterior-mean-M1", "posterior-mean-M4", "posterior-mean-M16", "posterior-mean-M64"}) {
      const auto mc = find(name, snr_db);
      CHECK(mc.gap > 0);
      CHECK(mc.gap < previous - 3 * mc.gap_se);
      previous = mc.gap;
    }
  }
  // At -10 dB mean forwarding is worse than estimating 0 (NMSE 1).
  const auto forwarding = find("mean-forwarding", -10);
  CHECK(forwarding.nmse > 1 + 5 * forwarding.nmse_se);
}

namespace {

// One prior's sweep over T with the exact oracle: the references once (they do not depend on T),
// `estimators` at every T and `monte_carlo` only at T <= monte_carlo_max_T (its cost is
// M * t_hat evaluations).
std::string oracle_sweep(const Gmm& prior, const Tensor& x_test, const std::vector<int64_t>& steps,
                         const std::vector<std::string>& estimators,
                         const std::vector<std::string>& monte_carlo, int64_t monte_carlo_max_T) {
  std::vector<dpm::diffusion::DenoiseBenchEntry> all;
  for (int64_t T : steps) {
    Schedule schedule = Schedule::paper_linear(T);
    GmmOracle oracle(prior, schedule);
    dpm::diffusion::DenoiseBenchOptions options;
    options.references = T == steps.front();
    for (const std::string& name : estimators) options.estimators.push_back(Estimator::parse(name));
    if (T <= monte_carlo_max_T)
      for (const std::string& name : monte_carlo)
        options.estimators.push_back(Estimator::parse(name));
    options.on_entry = [](const dpm::diffusion::DenoiseBenchEntry& e) {
      std::fprintf(stderr, "T %lld %-32s %+5.0f dB NMSE %.4f (%.1f s)\n",
                   static_cast<long long>(e.T), e.estimator.c_str(), e.snr_db, e.nmse, e.seconds);
    };
    std::vector<dpm::diffusion::DenoiseBenchEntry> entries =
        dpm::diffusion::run_denoise_bench(prior, x_test, schedule, oracle, options);
    all.insert(all.end(), entries.begin(), entries.end());
  }
  return dpm::experiments::report::nmse_tables(all);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// The driver of docs/results.md's "Exact-oracle estimators (eps*)" tables. Hidden (minutes):
//   DPM_RESULTS_FILE=eps_star.md build/tests/test_sampler "[.results]"
// DPM_BENCH_SAMPLES sets the paper GMM's test-set size (default 1000).
TEST_CASE("the denoising benchmark keeps the first rows' estimates when asked", "[denoiser]") {
  // example_rows = 3 of 10 test rows: the "ls" entry keeps y, the CME and mean forwarding keep
  // their estimates of those rows, and the scores are the same as without examples.
  Rng rng(33);
  const int64_t n = 5, rows = 10, kept = 3;
  Gmm g = dpm::testing::random_mixture(rng, n, 3, 1.0);
  const Schedule schedule = Schedule::paper_linear(20);
  GmmOracle oracle(g, schedule);
  const Tensor x_test = g.sample(rows, rng);
  dpm::diffusion::DenoiseBenchOptions options;
  options.snr_db = {0.0, 10.0};
  options.estimators = {Estimator::parse("mean-forwarding")};
  const auto plain = dpm::diffusion::run_denoise_bench(g, x_test, schedule, oracle, options);
  options.example_rows = kept;
  const auto kept_entries = dpm::diffusion::run_denoise_bench(g, x_test, schedule, oracle, options);
  REQUIRE(kept_entries.size() == plain.size());
  for (size_t snr = 0; snr < options.snr_db.size(); ++snr) {
    const double sigma2 = dpm::datasets::snr_db_to_sigma2(options.snr_db[snr]);
    const auto* first = &kept_entries[snr * 4];  // cme, lmmse, ls, mean-forwarding
    REQUIRE(first[2].estimator == "ls");
    const std::vector<double>& y = first[2].examples;
    REQUIRE(y.size() == static_cast<size_t>(kept * n));
    CHECK(relative_error(first[0].examples, g.cme(y, g.factorize(sigma2))) < 1e-12);
    const Denoised d = denoise(options.estimators[0], DoubleBatch::from_rows(y, kept, n),
                               1.0 / sigma2, oracle, schedule, rng);
    CHECK(relative_error(first[3].examples, d.x_hat.values) < 1e-12);
  }
  for (size_t i = 0; i < plain.size(); ++i) {
    CHECK(plain[i].examples.empty());
    CHECK(kept_entries[i].nmse == plain[i].nmse);
  }
}

TEST_CASE("denoising benchmark tables with eps*", "[.results]") {
  const char* samples_env = std::getenv("DPM_BENCH_SAMPLES");
  const int64_t paper_samples = samples_env ? std::atoll(samples_env) : 1000;
  const int64_t line_samples = 20000;
  const std::vector<int64_t> steps{10, 50, 300, 1000};
  const std::vector<std::string> estimators{"mean-forwarding", "mean-forwarding+authors-offset",
                                            "tweedie", "ddim"};
  std::string out;
  auto start = std::chrono::steady_clock::now();

  // The paper's random GMM (N = 64, K = 128, seed 2024 as in test_gmm), normalised with the mean
  // and scale of 100k training samples; the test set is normalised the same way.
  Rng rng(2024);
  Gmm raw = dpm::datasets::make_random_gmm(rng);
  dpm::datasets::Normalization norm = dpm::datasets::Normalization::fit(raw.sample(100000, rng));
  Gmm paper = norm.apply(raw);
  Tensor paper_test = norm.apply(raw.sample(paper_samples, rng));
  out += "### Paper GMM (N = 64, K = 128, normalised), " + std::to_string(paper_samples) +
         " test samples\n\n" +
         oracle_sweep(paper, paper_test, steps, estimators,
                      {"posterior-mean-M1", "posterior-mean-M4", "posterior-mean-M16"}, 50);
  const double paper_seconds = seconds_since(start);

  // The 1-D two-mode GMM, raw (power 1.05; see the figures test above).
  Gmm line;
  line.dim = 1;
  line.components = 2;
  line.weights = {0.5, 0.5};
  line.means = {-1.0, 1.0};
  line.covariances = {0.05, 0.05};
  Rng line_rng(2025);
  Tensor line_test = line.sample(line_samples, line_rng);
  out += "### 1-D GMM 0.5 N(-1, 0.05) + 0.5 N(1, 0.05), " + std::to_string(line_samples) +
         " test samples\n\n" +
         oracle_sweep(
             line, line_test, steps, estimators,
             {"posterior-mean-M1", "posterior-mean-M4", "posterior-mean-M16", "posterior-mean-M64"},
             50);
  char timing[160];
  std::snprintf(timing, sizeof timing,
                "Wall time: %.0f s for the paper GMM, %.0f s for the 1-D GMM (%d threads).\n",
                paper_seconds, seconds_since(start) - paper_seconds, dpm::num_threads());
  out += timing;

  const char* path = std::getenv("DPM_RESULTS_FILE");
  if (path) {
    std::ofstream file(path);
    file << out;
    REQUIRE(file.good());
  } else {
    std::cout << out;
  }
  CHECK(!out.empty());
}
