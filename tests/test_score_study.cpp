// dpmlab score-study (experiments/score_study.hpp): the plan's JSON round trip and validation, its
// unit list, the exact score error's reference (eps* itself scores 0), the fit, and a quick
// study: finite curves, the rule's and the oracle's iterations on the curve, the report's files,
// and the same numbers at any thread count.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "autograd/threading.hpp"
#include "experiments/score_study.hpp"
#include "experiments/score_study_report.hpp"
#include "temp_dir.hpp"

using namespace dpm;
namespace ex = dpm::experiments;

TEST_CASE("score-study plan: JSON round trip, validation naming the field", "[score_study]") {
  ex::ScoreStudyPlan plan = ex::ScoreStudyPlan::quick();
  plan.activation = nn::TwoLayerActivation::silu;
  plan.denoise_snr = {};
  const nlohmann::json json = plan.to_json();
  CHECK(ex::ScoreStudyPlan::from_json(json).to_json() == json);
  CHECK(json["activation"] == "silu");

  auto field_of = [](const nlohmann::json& changes) {
    nlohmann::json json = ex::ScoreStudyPlan::quick().to_json();
    json.merge_patch(changes);
    try {
      ex::ScoreStudyPlan::from_json(json);
    } catch (const ex::PlanError& e) {
      return e.field();
    }
    return std::string("(accepted)");
  };
  CHECK(field_of({{"lr", 0}}) == "lr");
  CHECK(field_of({{"samples", nlohmann::json::array()}}) == "samples");
  CHECK(field_of({{"widths", {64, 64}}}) == "widths");
  CHECK(field_of({{"batch", 1000}}) == "batch");  // more than n x draws of the smallest n
  CHECK(field_of({{"activation", "tanh"}}) == "activation");
  CHECK(field_of({{"width", 3}}) == "width");  // unknown field
  CHECK(field_of({{"batch", 8}}) == "(accepted)");
  CHECK(field_of({{"widths", {64, 65}}}) == "widths");  // odd: no symmetric initialisation
  CHECK(field_of({{"widths", {64, 65}}, {"init", "gaussian"}}) == "(accepted)");
}

TEST_CASE("score-study units: both sweeps per seed, the shared run once, f_lin with GD only",
          "[score_study]") {
  ex::ScoreStudyPlan plan = ex::ScoreStudyPlan::quick();  // n {16, 32} at m 64; m {64, 256} at n 16
  std::vector<ex::ScoreStudyUnit> units = plan.units();
  REQUIRE(units.size() == 6);
  CHECK(units[0].samples == 32);  // n = 16, m = 64 is in the width sweep
  CHECK_FALSE(units[0].linearized);
  CHECK((units[1].sweep == ex::ScoreSweep::width && units[1].width == 64 && units[1].linearized));
  CHECK(units[3].seed == 1);
  plan.batch = 8;
  for (const ex::ScoreStudyUnit& unit : plan.units()) CHECK_FALSE(unit.linearized);
}

TEST_CASE("the exact score error of eps* itself is 0 to rounding", "[score_study]") {
  Rng rng(4);
  const datasets::Gmm gmm = datasets::make_random_gmm(rng, 3, 5);
  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(20);
  const diffusion::GmmOracle oracle(gmm, schedule);
  const ex::DsmSet set = ex::draw_dsm_set(gmm, schedule, 50, 1, true, Rng(5));
  const std::vector<double> exact = ex::exact_eps(oracle, set);
  // eps* through the path a network's predictions take: every row on its own, at its own step.
  diffusion::GmmOracle predictor(gmm, schedule);
  std::vector<double> per_row;
  for (int64_t row = 0; row < 50; ++row) {
    const Tensor eps = predictor.predict_eps(set.x.narrow(0, row, 1).contiguous(),
                                             set.steps[row] + 1);
    per_row.insert(per_row.end(), eps.data(), eps.data() + eps.numel());
  }
  const double error = ex::mean_squared_error(per_row, exact);
  CHECK(error < 1e-12);  // float32 rounding of eps* only
  // ... and the labels are not eps*: the DSM risk of eps* is the label noise, well above 0.
  CHECK(ex::mean_squared_error(set.labels, exact) > 0.05);
}

TEST_CASE("log-log fit: the slope of a power law, its interval covering it", "[score_study]") {
  std::vector<std::pair<double, double>> xy;
  for (double x : {10.0, 20.0, 40.0, 80.0, 160.0})
    for (double noise : {0.97, 1.03}) xy.emplace_back(x, 3.0 * std::pow(x, -0.5) * noise);
  const ex::LogLogFit fit = ex::fit_log_log(xy);
  CHECK(fit.points == 10);
  CHECK(fit.slope == Approx(-0.5).margin(1e-9));
  CHECK(fit.ci_low < -0.5);
  CHECK(fit.ci_high > -0.5);
  CHECK(std::isnan(ex::fit_log_log({{1.0, 1.0}}).slope));
}

TEST_CASE("a quick score study: finite curves, the rule on them, the same at any thread count",
          "[score_study]") {
  const ex::ScoreStudyPlan plan = ex::ScoreStudyPlan::quick();
  set_num_threads(1);
  ex::report::NullProgress progress;
  const ex::ScoreStudyResults one = ex::run(plan, progress);
  set_num_threads(2);
  const ex::ScoreStudyResults two = ex::run(plan, progress);
  set_num_threads(0);
  REQUIRE(one.runs.size() == plan.units().size());
  CHECK(one.label_noise > 0);
  for (const ex::ScoreRun& run : one.runs) {
    REQUIRE(run.curve.size() == static_cast<size_t>(plan.iterations / plan.eval_every + 1));
    for (const ex::ScorePoint& p : run.curve) {
      CHECK(std::isfinite(p.score_error));
      CHECK(std::isfinite(p.heldout_loss));
      CHECK(std::isfinite(p.distance) == run.unit.linearized);
    }
    CHECK(run.best_error <= run.stopped_error);
    CHECK(run.best_error <= run.final_error);
    // GD lowers the empirical risk.
    CHECK(run.curve.back().train_loss < run.curve.front().train_loss);
    CHECK(run.denoise_over_cme.size() == plan.denoise_snr.size());
    if (run.unit.linearized) CHECK(std::isfinite(run.kernel_error));
  }
  CHECK(std::isfinite(one.samples_fit.slope));
  // All but the wall times, as text (NaN, where f_lin is not run, never equals itself).
  auto numbers = [](const ex::ScoreStudyResults& results) {
    nlohmann::json runs = ex::report::to_json(results)["runs"];
    for (nlohmann::json& run : runs) run.erase("seconds");
    return runs.dump();
  };
  CHECK(numbers(one) == numbers(two));

  testing::TempDir dir;
  const ex::report::Written written = ex::report::write(one, dir.path);
  for (const std::string& file : written.files) CHECK(std::filesystem::exists(dir.path / file));
  CHECK(written.markdown.find("## Runs") != std::string::npos);
}
