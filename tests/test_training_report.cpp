// The training report (experiments/training_report.hpp): it reads a tracked run and says when the
// constant crosses the bound, renders a run without tracking, and rejects malformed metrics
// naming the file, the line and the field.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "experiments/training_report.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace dpm;
using dpm::testing::TempDir;

namespace {

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
}

}  // namespace

TEST_CASE("the training report reads a tracked run and says when the constant crosses the bound",
          "[training_report]") {
  TempDir dir("dpm_test_training_report");
  const fs::path metrics = dir.file("metrics.jsonl");
  auto scan = [](int64_t step, double mu) {
    return R"({"step": )" + std::to_string(step) + R"(, "epoch": 0, "loss": 0.5, "lr": 0.001, )" +
           R"("jacobian_step": )" + std::to_string(step) +
           R"(, "jacobian": [{"t": 7, "snr_db": 0, )" + R"("mu_max": )" + std::to_string(mu) +
           R"(, "mu_mean": 0.9, "eps_max": 0.4, "eps_mean": 0.3, "converged": 4, )" +
           R"("log_concave_bound": 1.01, "cme_lower": 0.99, "exact_cme_max": 1.02, )" +
           R"("exact_cme_mean": 1.0}]})";
  };
  write_lines(metrics, {scan(10, 0.95), scan(20, 1.005), scan(30, 1.2), scan(40, 1.1),
                        // a resumed run replays step 40: the later line supersedes
                        scan(40, 1.1), R"({"epoch": 1, "step": 40, "train_loss": 0.4})"});
  const experiments::TrainingTrajectory trajectory = experiments::read_training_metrics(metrics);
  REQUIRE(trajectory.tracked.size() == 1);
  CHECK(trajectory.tracked[0].mu_max.size() == 4);
  const std::vector<experiments::CrossingSummary> summary =
      experiments::crossing_summary(trajectory);
  REQUIRE(summary.size() == 1);
  REQUIRE(summary[0].first_above_bound);
  CHECK(*summary[0].first_above_bound == 30);
  CHECK(summary[0].last_step == 40);
  CHECK(summary[0].over_bound == Approx(1.1 / 1.01));
  CHECK(summary[0].over_exact == Approx(1.1 / 1.02));

  const experiments::report::Written written =
      experiments::report::write(trajectory, dir.file("report"));
  CHECK_THAT(written.markdown, Catch::Contains("first above the log-concave bound at step 30"));
  CHECK(fs::exists(dir.file("report/training.md")));
  std::ifstream csv(dir.file("report/tracking.csv"));
  std::string header, row;
  std::getline(csv, header);
  int rows = 0;
  while (std::getline(csv, row)) ++rows;
  CHECK(rows == 4);
}

TEST_CASE("the training report renders a run without tracking and rejects malformed metrics",
          "[training_report]") {
  TempDir dir("dpm_test_training_report_old");
  const fs::path metrics = dir.file("metrics.jsonl");
  // What a run of an earlier version, without any tracker, wrote.
  write_lines(metrics, {R"({"step": 50, "epoch": 0, "loss": 0.9, "lr": 0.001, "grad_norm": 2.0})",
                        R"({"epoch": 1, "step": 64, "train_loss": 0.8, "val_loss": 0.85})"});
  const experiments::TrainingTrajectory old = experiments::read_training_metrics(metrics);
  CHECK_FALSE(old.has_jacobian());
  CHECK_FALSE(old.has_spectral());
  const experiments::report::Written written = experiments::report::write(old, dir.file("report"));
  CHECK_THAT(written.markdown,
             Catch::Contains("did not track them") && Catch::Contains("--track-jacobian"));

  write_lines(metrics, {R"({"step": 50, "loss": 0.9})", "not json", R"({"step": 60, "loss": 1})"});
  CHECK_THROWS_WITH(experiments::read_training_metrics(metrics),
                    Catch::Contains("metrics.jsonl:2") && Catch::Contains("not a JSON line"));
  write_lines(metrics, {R"({"step": 50, "loss": "low"})"});
  CHECK_THROWS_WITH(experiments::read_training_metrics(metrics),
                    Catch::Contains("metrics.jsonl:1") && Catch::Contains("'loss'"));
  write_lines(metrics, {R"({"step": 50, "loss": 1, "jacobian_step": 50, "jacobian": [{"t": 3}]})"});
  CHECK_THROWS_WITH(experiments::read_training_metrics(metrics), Catch::Contains("'snr_db'"));
  // A run killed mid-write leaves a cut last line: read up to it.
  write_lines(metrics, {R"({"step": 50, "loss": 1})", R"({"step": 60, "lo)"});
  CHECK(experiments::read_training_metrics(metrics).loss.size() == 1);
  CHECK_THROWS_WITH(experiments::read_training_metrics(dir.file("missing.jsonl")),
                    Catch::Contains("missing.jsonl"));
}
