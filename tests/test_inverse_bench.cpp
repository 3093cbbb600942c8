// The inverse-problem benchmark as an experiment (experiments/inverse_bench.hpp): its plan's JSON
// round trip and validation, the progress total from the unit list, what the references and the
// scores must satisfy, the report's files and the measurements written beside them.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "experiments/inverse_bench.hpp"
#include "experiments/inverse_bench_report.hpp"
#include "tests/temp_dir.hpp"

namespace ex = dpm::experiments;

namespace {

struct RecordingProgress final : ex::report::Progress {
  int64_t total = -1, advanced = 0;
  std::vector<std::string> stages;
  void begin(int64_t total_units) override { total = total_units; }
  void advance(const std::string& stage) override {
    ++advanced;
    stages.push_back(stage);
  }
};

// A small normalised GMM prior (N = 6, K = 3) in `dir`/gmm.safetensors.
std::string small_prior(const std::filesystem::path& dir) {
  dpm::Rng rng(5);
  const dpm::datasets::Gmm raw = dpm::datasets::make_random_gmm(rng, 6, 3);
  const auto normalization = dpm::datasets::Normalization::fit(raw.sample(4000, rng));
  const std::string path = (dir / "gmm.safetensors").string();
  dpm::datasets::save_gmm(normalization.apply(raw), path);
  return path;
}

// A plan small enough for the normal suite: the quick size with two noise levels, on a T of 20.
ex::InverseBenchPlan small_plan(const std::string& gmm) {
  ex::InverseBenchPlan plan = ex::InverseBenchPlan::quick();
  plan.gmm = gmm;
  plan.cs_rows = {3};
  plan.sigma_y = {0.1, 0.3};
  plan.T = 20;
  plan.dps_steps = 10;
  plan.nfe_steps = {2, 5};
  plan.ablation_lambda = {0.1};
  plan.seed = 3;
  return plan;
}

std::string field_of(const nlohmann::json& json, const nlohmann::json& change) {
  nlohmann::json changed = json;
  changed.update(change);
  try {
    ex::InverseBenchPlan::from_json(changed);
  } catch (const ex::PlanError& e) {
    return e.field();
  }
  return "(none)";
}

}  // namespace

TEST_CASE("inverse-bench plan: JSON round trip, validation naming the field",
          "[experiments][inverse-bench]") {
  ex::InverseBenchPlan plan = small_plan("prior.safetensors");
  plan.solvers = {ex::InverseSolver::ddrm, ex::InverseSolver::red_diff};
  plan.red_diff_weighting = dpm::diffusion::inverse::RedDiffWeighting::trunc_linear;
  plan.pigdm_guidance = dpm::diffusion::inverse::PigdmGuidance::noisy;
  const nlohmann::json json = plan.to_json();
  CHECK(json["solvers"] == nlohmann::json::array({"ddrm", "red-diff"}));
  CHECK(json["red_diff_weighting"] == "trunc_linear");
  const ex::InverseBenchPlan back = ex::InverseBenchPlan::from_json(json);
  CHECK(back.to_json() == json);

  CHECK(field_of(json, {{"sigma_y", {0.1, 0.0}}}) == "sigma_y");
  CHECK(field_of(json, {{"missing", {1.0}}}) == "missing");
  CHECK(field_of(json, {{"cs_rows", {0}}}) == "cs_rows");
  CHECK(field_of(json, {{"solvers", {"red-diff", "sgd"}}}) == "solvers");
  CHECK(field_of(json, {{"red_diff_lr", 0.0}}) == "red_diff_lr");
  CHECK(field_of(json, {{"dps_eta", 1.5}}) == "dps_eta");
  CHECK(field_of(json, {{"ddrm_eta_b", -0.1}}) == "ddrm_eta_b");
  CHECK(field_of(json, {{"red_diff_weighting", "cubic"}}) == "red_diff_weighting");
  CHECK(field_of(json, {{"parts", nlohmann::json::array()}}) == "parts");
  CHECK(field_of(json, {{"samples", 1}}) == "samples");
  CHECK(field_of(json, {{"dps_steps", 0}}) == "(none)");  // every step

  // Two tasks x two noise levels: each case's references, then its 2 x 4 solver units; the NFE
  // sweep (4 solvers x 2 step counts) and the ablation on the first case.
  const ex::InverseBenchPlan all = small_plan("prior.safetensors");
  const std::vector<ex::InverseBenchUnit> units = all.units();
  size_t references = 0, ablation = 0;
  for (const ex::InverseBenchUnit& u : units) {
    references += u.kind == ex::InverseBenchUnitKind::references;
    ablation += u.part == ex::InverseBenchPart::ablation;
  }
  CHECK(references == 4);
  // 6 weightings, the one extra lambda and two further step orders.
  CHECK(ablation == 6 + 1 + 2);
  CHECK(units.size() == 4 + 4 * 4 + 4 * 2 + ablation);

  // The quick size is a valid plan that fits a T of 20 and keeps every part and solver.
  ex::InverseBenchPlan quick = ex::InverseBenchPlan::quick();
  quick.gmm = "prior.safetensors";
  quick.T = 20;
  CHECK_NOTHROW(quick.validate());
  CHECK(quick.parts == ex::InverseBenchPlan{}.parts);
  CHECK(quick.solvers == ex::InverseBenchPlan{}.solvers);
  ex::InverseBenchPlan full;
  full.T = 300;
  CHECK(quick.tasks().size() == 2);
  CHECK(quick.units().size() < full.units().size());
}

TEST_CASE("inverse-bench: the progress total is the unit list, scores beside the posterior mean",
          "[experiments][inverse-bench]") {
  dpm::testing::TempDir tmp("dpm_inverse_bench");
  const ex::InverseBenchPlan plan = small_plan(small_prior(tmp.path));
  const std::vector<ex::InverseBenchUnit> units = plan.units();
  RecordingProgress progress;
  const ex::InverseBenchResults results = ex::run(plan, progress);
  CHECK(progress.total == static_cast<int64_t>(units.size()));
  // Every case's references first (the solvers need their measurements), then the solvers.
  std::vector<std::string> expected;
  for (const bool solves : {false, true})
    for (const ex::InverseBenchUnit& unit : units)
      if ((unit.kind == ex::InverseBenchUnitKind::solve) == solves) expected.push_back(unit.stage());
  CHECK(progress.stages == expected);
  // Three references per case, one entry per solver unit.
  CHECK(results.entries.size() == units.size() + 2 * 4);

  for (const ex::InverseBenchEntry& e : results.entries) {
    INFO(e.task << ", sigma_y " << e.sigma_y << ", " << e.method << ", " << e.predictor);
    CHECK(std::isfinite(e.score.nmse));
    CHECK(e.score.distance >= 0.0);
    if (e.method == "posterior-mean") {
      // The optimum against itself: no gap, no distance.
      CHECK(e.score.gap == 0.0);
      CHECK(e.score.distance == 0.0);
    } else if (e.method != "ls") {
      // No estimator beats the posterior mean on average: a negative gap must be noise.
      CHECK(e.score.gap > -4.0 * e.score.gap_se - 1e-12);
    }
    if (e.steps > 0) CHECK(e.evaluations >= e.steps);
  }

  // The report: its files, and the measurements re-read: x0 and each task's operator applied to
  // it give y up to the noise, in float32.
  std::filesystem::create_directories(tmp.path / "out");
  const ex::report::Written written = ex::report::write(results, tmp.path / "out");
  for (const std::string& f : written.files) CHECK(std::filesystem::exists(tmp.path / "out" / f));
  CHECK(written.markdown.find("## Summary") != std::string::npos);
  const dpm::SafeTensors saved =
      dpm::read_safetensors((tmp.path / "out" / "measurements.safetensors").string());
  const dpm::Tensor& x0 = saved.get("x0");
  REQUIRE(x0.numel() == static_cast<int64_t>(results.x0.size()));
  for (int64_t i = 0; i < x0.numel(); ++i)
    CHECK(x0.data()[i] == static_cast<float>(results.x0[i]));
  std::set<std::string> names;
  for (const auto& [name, t] : saved.tensors) names.insert(name);
  CHECK(names.count("A: cs M=3"));
  CHECK(names.count("y: inpaint 50%, sigma_y 0.3"));

  // A solver that diverged is reported as such, in its row and in the summary, not as a number.
  ex::InverseBenchResults diverged = results;
  for (ex::InverseBenchEntry& e : diverged.entries)
    if (e.part == ex::InverseBenchPart::table && e.method == "dps" && e.predictor == "oracle")
      e.score.nmse = e.score.gap = e.score.distance = std::nan("");
  std::filesystem::create_directories(tmp.path / "diverged");
  const std::string md = ex::report::write(diverged, tmp.path / "diverged").markdown;
  CHECK(md.find("dps with eps*: diverged (non-finite) in 4 of 4 cases") != std::string::npos);
  CHECK(md.find("| dps | oracle | 10 | diverged (non-finite) |") != std::string::npos);
  CHECK(md.find("nan") == std::string::npos);

  // The same plan again: the same numbers.
  RecordingProgress again;
  const ex::InverseBenchResults repeat = ex::run(plan, again);
  REQUIRE(repeat.entries.size() == results.entries.size());
  for (size_t i = 0; i < results.entries.size(); ++i)
    CHECK(repeat.entries[i].score.nmse == results.entries[i].score.nmse);
}

TEST_CASE("inverse-bench: a plan that does not fit the prior names the field",
          "[experiments][inverse-bench]") {
  dpm::testing::TempDir tmp("dpm_inverse_bench_errors");
  ex::InverseBenchPlan plan = small_plan(small_prior(tmp.path));
  RecordingProgress progress;
  auto field_of_run = [&](const ex::InverseBenchPlan& p) {
    try {
      ex::read_inputs(p);
    } catch (const ex::PlanError& e) {
      return e.field();
    }
    return std::string("(none)");
  };
  CHECK(field_of_run(plan) == "(none)");
  ex::InverseBenchPlan bad = plan;
  bad.cs_rows = {7};  // the prior has N = 6
  CHECK(field_of_run(bad) == "cs_rows");
  bad = plan;
  bad.nfe_steps = {2, 50};  // T = 20
  CHECK(field_of_run(bad) == "nfe_steps");
  bad = plan;
  bad.ddrm_steps = 21;
  CHECK(field_of_run(bad) == "ddrm_steps");
  bad = plan;
  bad.gmm = (tmp.path / "absent.safetensors").string();
  CHECK(field_of_run(bad) == "gmm");
}
