// The Jacobian tracker (trainers/jacobian_tracker.hpp): it measures what the Lipschitz audit
// measures on the same checkpoint and points, and a resumed run continues its trajectory bitwise.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/lipschitz_audit.hpp"
#include "tests/oracle_fixtures.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/jacobian_tracker.hpp"

namespace fs = std::filesystem;
using namespace dpm;
using dpm::testing::TempDir;

namespace {

constexpr int64_t kDim = 6;

struct Setup {
  datasets::Gmm gmm;
  Tensor train, val;
  train::DpmTrainingConfig config;
};

Setup small_setup() {
  Setup s;
  Rng rng(17);
  s.gmm = dpm::testing::random_mixture(rng, kDim, 3, 1.0);
  s.train = s.gmm.sample(256, rng);
  s.val = s.gmm.sample(32, rng);
  s.config.model = {
      {"arch", "mlp"}, {"dim", kDim}, {"width", 32}, {"depth", 2}, {"time_embedding_size", 8}};
  s.config.schedule = diffusion::Schedule::paper_linear(40).to_json();
  s.config.optimizer.lr = 1e-3;
  s.config.trainer.batch_size = 32;
  s.config.trainer.log_every = 10;
  s.config.trainer.resume_every = 10;
  s.config.trainer.progress = false;
  return s;
}

train::JacobianTrackerOptions tracker_options() {
  train::JacobianTrackerOptions options;
  options.every = 10;
  options.probes = 4;
  options.seed = 5;
  options.max_iterations = 30;  // to convergence: a 6-dimensional map
  options.tolerance = 1e-6;
  return options;
}

// Trains with a JacobianTracker (and the GMM's exact values) into `dir`; returns the tracker.
std::shared_ptr<train::JacobianTracker> train_tracked(const Setup& s,
                                                      train::DpmTrainingConfig config,
                                                      const std::string& dir) {
  config.trainer.out_dir = dir;
  std::shared_ptr<train::JacobianTracker> tracker;
  train::DpmTrainingExtras extras;
  extras.model_callbacks = [&](const std::shared_ptr<nn::NoiseModel>& model,
                               const diffusion::Objective& objective) {
    const diffusion::GmmOracle oracle(s.gmm, objective.schedule());
    tracker = std::make_shared<train::JacobianTracker>(
        model, objective.schedule(), objective.options().target, s.val, tracker_options(), &oracle);
    return std::vector<std::shared_ptr<train::Callback>>{tracker};
  };
  train::train_dpm(config, s.train, Tensor(), {}, extras);
  return tracker;
}

std::vector<nlohmann::json> jacobian_lines(const std::string& metrics) {
  std::vector<nlohmann::json> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line);
    if (record.contains("jacobian")) out.push_back(record);
  }
  return out;
}

}  // namespace

TEST_CASE("the tracker measures what the audit measures on the same checkpoint and points",
          "[jacobian_tracker][audit]") {
  TempDir dir("dpm_test_jacobian_tracker");
  const Setup s = small_setup();
  train::DpmTrainingConfig config = s.config;
  config.trainer.max_steps = 20;
  const auto tracker = train_tracked(s, config, dir.file("run"));
  const std::vector<train::TrackedStep>& tracked = tracker->last_scan();
  REQUIRE(tracked.size() == tracker->steps().size());
  REQUIRE(tracked.size() >= 3);  // -10, 0, 10 and 20 dB on T = 40: distinct steps but one or two

  // The audit of the saved checkpoint (the last weights: no validation, no EMA), with the
  // tracker's seed, clean rows and probe count, at the tracked steps.
  diffusion::DpmCheckpoint checkpoint =
      diffusion::load_dpm_checkpoint(dir.file("run/best.safetensors"));
  const auto network = diffusion::make_predictor(checkpoint);
  experiments::AuditPlan plan;
  plan.seed = tracker_options().seed;
  plan.samples = tracker_options().probes;
  plan.denoiser_samples = 1;
  plan.snr = {30};
  plan.t_grid.values = tracker->steps();
  plan.tolerance = 1e-6;
  plan.max_iterations = 30;
  const experiments::AuditInputs inputs{network.get(), Shape{kDim}, s.val, "validation rows",
                                        nullptr};
  experiments::report::NullProgress quiet;
  const experiments::LipschitzAudit audit = experiments::run_lipschitz_audit(plan, inputs, quiet);
  for (const train::TrackedStep& m : tracked) {
    const auto it = std::find_if(audit.steps.begin(), audit.steps.end(),
                                 [&](const experiments::StepAudit& a) { return a.t == m.t; });
    REQUIRE(it != audit.steps.end());
    INFO("t = " << m.t);
    CHECK(m.mu_max == Approx(it->empirical_mean.max).epsilon(1e-4));
    CHECK(m.mu_mean == Approx(it->empirical_mean.mean).epsilon(1e-4));
    CHECK(m.eps_max == Approx(it->empirical_eps.max).epsilon(1e-4));
    CHECK(m.log_concave_bound == Approx(it->cme_log_concave_upper).epsilon(1e-12));
    CHECK(m.cme_lower == Approx(it->cme_lower).epsilon(1e-12));
    REQUIRE(m.exact_cme_max);
    CHECK(*m.exact_cme_max >= m.cme_lower * (1 - 1e-9));  // c_t bounds the exact map below
  }
}

TEST_CASE("a resumed run continues the Jacobian trajectory bitwise", "[jacobian_tracker][resume]") {
  TempDir dir("dpm_test_jacobian_resume");
  const Setup s = small_setup();
  train::DpmTrainingConfig config = s.config;
  config.trainer.max_steps = 40;
  train_tracked(s, config, dir.file("straight"));

  config.trainer.max_steps = 20;
  train_tracked(s, config, dir.file("resumed"));
  config.trainer.max_steps = 40;
  config.resume_from = dir.file("resumed/resume.safetensors");
  train_tracked(s, config, dir.file("resumed"));

  const std::vector<nlohmann::json> straight = jacobian_lines(dir.file("straight/metrics.jsonl"));
  const std::vector<nlohmann::json> resumed = jacobian_lines(dir.file("resumed/metrics.jsonl"));
  REQUIRE(straight.size() == 4);
  REQUIRE(resumed.size() == 4);
  for (size_t i = 0; i < straight.size(); ++i) {
    INFO("scan " << i);
    CHECK(straight[i].at("jacobian").dump() == resumed[i].at("jacobian").dump());
  }
  // Later scans start from earlier directions: they differ from the first scan's values.
  CHECK(straight[3].at("jacobian").dump() != straight[0].at("jacobian").dump());
}

TEST_CASE("the tracker's options and state are checked", "[jacobian_tracker]") {
  const Setup s = small_setup();
  Rng rng(1);
  std::shared_ptr<nn::NoiseModel> model = nn::make_noise_model(s.config.model, rng);
  const diffusion::Schedule schedule = diffusion::Schedule::paper_linear(40);
  train::JacobianTrackerOptions bad = tracker_options();
  bad.every = 0;
  CHECK_THROWS_WITH(
      train::JacobianTracker(model, schedule, diffusion::PredictionTarget::eps, s.val, bad),
      Catch::Contains("every"));
  bad = tracker_options();
  bad.snr_db = {};
  CHECK_THROWS_WITH(
      train::JacobianTracker(model, schedule, diffusion::PredictionTarget::eps, s.val, bad),
      Catch::Contains("snr_db"));
  train::JacobianTracker tracker(model, schedule, diffusion::PredictionTarget::eps, s.val,
                                 tracker_options());
  NamedTensors state = tracker.state_dict();
  state.pop_back();
  CHECK_THROWS_WITH(tracker.load_state_dict(state), Catch::Contains("directions"));
}
