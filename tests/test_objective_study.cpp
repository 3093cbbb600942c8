// dpmlab objective-study (experiments/objective_study.hpp): the plan's JSON round trip and
// validation, and a small study end to end: every objective trained, tracked and evaluated, the
// exact oracle's Tweedie equal to the CME, and a rerun reusing the finished trainings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "experiments/objective_study.hpp"
#include "experiments/objective_study_report.hpp"
#include "tests/oracle_fixtures.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
namespace ex = dpm::experiments;
using namespace dpm;
using dpm::testing::TempDir;

TEST_CASE("objective-study plan: JSON round trip, validation naming the field",
          "[objective_study]") {
  ex::ObjectiveStudyPlan plan;
  plan.data = "runs/gmm";
  plan.objectives = {ex::StudyObjective::vlb_importance, ex::StudyObjective::simple};
  const nlohmann::json json = plan.to_json();
  CHECK(ex::ObjectiveStudyPlan::from_json(json).to_json() == json);
  CHECK(json["objectives"] == nlohmann::json::array({"vlb-importance", "simple"}));

  auto field_of = [&](const nlohmann::json& changes) {
    nlohmann::json changed = json;
    changed.merge_patch(changes);
    try {
      ex::ObjectiveStudyPlan::from_json(changed);
    } catch (const ex::PlanError& e) {
      return e.field();
    }
    return std::string("(accepted)");
  };
  CHECK(field_of({{"data", ""}}) == "data");
  CHECK(field_of({{"objectives", {"simple", "simple"}}}) == "objectives");
  CHECK(field_of({{"objectives", {"elbo"}}}) == "objectives");
  CHECK(field_of({{"hybrid_lambda", 0}}) == "hybrid_lambda");
  CHECK(field_of({{"probes", 0}}) == "probes");
  CHECK(field_of({{"track_snr", nlohmann::json::array()}}) == "track_snr");
  CHECK(field_of({{"epochs", 3}}) == "epochs");  // unknown field
  CHECK(field_of({{"steps", 100}}) == "(accepted)");

  const diffusion::ObjectiveOptions base = [] {
    diffusion::ObjectiveOptions o;
    o.target = diffusion::PredictionTarget::v;
    o.first_step = 5;  // a step range of the base config does not carry over to vlb
    return o;
  }();
  const diffusion::ObjectiveOptions is =
      plan.objective_options(ex::StudyObjective::vlb_importance, base);
  CHECK(is.loss == diffusion::LossKind::vlb);
  CHECK(is.importance_sampling);
  CHECK(is.target == diffusion::PredictionTarget::v);
  CHECK(is.first_step == 1);
  CHECK(plan.objective_options(ex::StudyObjective::hybrid, base).hybrid_lambda ==
        plan.hybrid_lambda);
}

TEST_CASE(
    "a small objective study: every objective trained, tracked and evaluated, a rerun "
    "reuses the trainings",
    "[objective_study]") {
  TempDir dir("dpm_test_objective_study");
  Rng rng(23);
  const datasets::Gmm gmm = dpm::testing::random_mixture(rng, 4, 2, 1.0);
  datasets::GmmDataset data = datasets::sample_gmm_dataset(gmm, {512, 64, 64}, Shape{4}, Rng(3));
  datasets::write_gmm_dataset(dir.file("gmm"), data, {{"test", true}});
  std::ofstream(dir.file("config.json"))
      << R"({"model": {"arch": "mlp", "width": 16, "depth": 1, "time_embedding_size": 8},
             "schedule": {"kind": "paper_linear", "T": 20},
             "optimizer": {"lr": 0.002},
             "training": {"batch_size": 64, "log_every": 10}})";

  ex::ObjectiveStudyPlan plan;
  plan.data = dir.file("gmm");
  plan.train_config = dir.file("config.json");
  plan.runs = dir.file("runs");
  plan.steps = 40;
  plan.track_every = 20;
  plan.probes = 2;
  plan.nll_samples = 32;
  plan.denoise_samples = 32;
  plan.denoise_snr = {0, 10};
  ex::report::NullProgress quiet;
  const ex::ObjectiveStudyResults results = ex::run(plan, quiet);

  REQUIRE(results.runs.size() == 4);
  for (const ex::ObjectiveRun& run : results.runs) {
    INFO(ex::choice_name(run.objective));
    CHECK(run.steps == 40);
    REQUIRE(run.bound.rows.size() == 4);
    for (const ex::NllBoundRow& row : run.bound.rows) CHECK(std::isfinite(row.result.bound));
    CHECK(std::isfinite(run.bound.exact_nll));
    CHECK(run.denoise.size() == 4);  // Tweedie and mean forwarding at two SNRs
    REQUIRE(run.trajectory.tracked.size() >= 1);
    for (const ex::TrackedStepTrajectory& s : run.trajectory.tracked) {
      CHECK(s.mu_max.size() == 2);  // scans at steps 20 and 40
      CHECK(s.exact_cme_max);
    }
    CHECK(fs::exists(fs::path(run.run_dir) / "report" / "training.md"));
  }
  // eps*'s rows and the references, once: Tweedie and mean forwarding with eps* and the CME, at
  // each SNR, all finite.
  for (double snr : plan.denoise_snr)
    for (const char* estimator : {"tweedie", "mean-forwarding", "cme"}) {
      INFO(estimator << " at " << snr << " dB");
      const auto it =
          std::find_if(results.oracle_denoise.begin(), results.oracle_denoise.end(),
                       [&](const auto& e) { return e.estimator == estimator && e.snr_db == snr; });
      REQUIRE(it != results.oracle_denoise.end());
      CHECK(std::isfinite(it->nmse));
    }
  const ex::report::Written written = ex::report::write(results, dir.file("report"));
  CHECK_THAT(written.markdown, Catch::Contains("vlb-importance") &&
                                   Catch::Contains("eps* (exact)") && Catch::Contains("exact NLL"));
  CHECK(fs::exists(dir.file("report/objectives.json")));

  // A rerun reuses every finished training and evaluates the same weights to the same numbers.
  const ex::ObjectiveStudyResults again = ex::run(plan, quiet);
  for (size_t i = 0; i < again.runs.size(); ++i) {
    CHECK_THAT(again.runs[i].stop, Catch::Contains("(reused)"));
    CHECK(again.runs[i].bound.rows[0].result.bound == results.runs[i].bound.rows[0].result.bound);
  }
}
