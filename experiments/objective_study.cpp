#include "experiments/objective_study.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/denoise_bench.hpp"
#include "experiments/report/files.hpp"
#include "experiments/report/format.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/jacobian_tracker.hpp"
#include "trainers/spectral_tracker.hpp"

namespace dpm::experiments {
namespace {

namespace fs = std::filesystem;

// The run directory's record of a finished training (a training with it is not repeated).
constexpr const char* kFinishedFile = "study_training.json";

// What every unit reads: the data, its GMM, and the base training config fitted to the data.
struct StudyData {
  datasets::GmmDataset set;
  datasets::Gmm gmm;
  Shape model_shape;
  train::DpmTrainingConfig config;
};

StudyData read_study_data(const ObjectiveStudyPlan& plan) {
  StudyData data;
  data.set = as_plan_error("data", [&] { return datasets::read_gmm_dataset(plan.data); });
  const fs::path gmm_file = fs::path(plan.data) / datasets::kGmmFileName;
  if (!fs::exists(gmm_file))
    throw PlanError("data", "'" + plan.data + "' has no " + datasets::kGmmFileName +
                                " (the study needs the data's exact GMM: `dpmlab gmm make`)");
  data.gmm = as_plan_error("data", [&] { return datasets::load_gmm(gmm_file.string()); });
  if (!plan.train_config.empty())
    data.config = as_plan_error("train_config", [&] {
      std::ifstream in(plan.train_config);
      if (!in) throw std::runtime_error("cannot read " + plan.train_config);
      try {
        return train::DpmTrainingConfig::from_json(nlohmann::json::parse(in));
      } catch (const std::exception& e) {
        throw std::runtime_error(plan.train_config + ": " + e.what());
      }
    });
  data.model_shape = as_plan_error("train_config", [&] {
    return datasets::model_input_shape(data.config.model, data.set.sample_shape);
  });
  train::fit_model_to_data(data.config, data.model_shape);
  if (plan.track_every % data.config.trainer.log_every != 0)
    throw PlanError("track_every", std::to_string(plan.track_every) +
                                       " is not a multiple of the config's log_every = " +
                                       std::to_string(data.config.trainer.log_every));
  return data;
}

// Forwards the training's step, rate and time left to the study's progress line.
class StepStatus final : public train::Callback {
 public:
  StepStatus(report::Progress& progress, std::string name, int64_t total)
      : progress_(progress), name_(std::move(name)), total_(total) {}
  std::string name() const override { return "study_status"; }
  void on_step(const train::StepInfo& info, nlohmann::json&) override {
    const auto now = std::chrono::steady_clock::now();
    if (first_step_ < 0) {
      first_step_ = info.step;
      started_ = now;
    }
    if (info.step % 50 != 0) return;
    const double seconds = std::chrono::duration<double>(now - started_).count();
    const double rate = seconds > 0 ? static_cast<double>(info.step - first_step_) / seconds : 0;
    char text[200];
    std::snprintf(
        text, sizeof text, "train %s: step %lld of %lld, %.3g steps/s, %s left, loss %.4g",
        name_.c_str(), static_cast<long long>(info.step), static_cast<long long>(total_), rate,
        rate > 0 ? report::duration(static_cast<double>(total_ - info.step) / rate).c_str() : "?",
        info.loss);
    progress_.status(text);
  }

 private:
  report::Progress& progress_;
  std::string name_;
  int64_t total_;
  int64_t first_step_ = -1;
  std::chrono::steady_clock::time_point started_;
};

train::DpmTrainingConfig training_config(const ObjectiveStudyPlan& plan, const StudyData& data,
                                         StudyObjective objective, const fs::path& dir) {
  train::DpmTrainingConfig config = data.config;
  config.objective = plan.objective_options(objective, data.config.objective);
  config.trainer.out_dir = dir.string();
  config.trainer.seed = config.init_seed = plan.seed;
  config.trainer.progress = false;
  // Equal budgets: every objective runs its steps (no early stopping, no wall-clock budget).
  if (plan.steps > 0) config.trainer.max_steps = plan.steps;
  config.trainer.max_epochs = 1'000'000;
  config.trainer.patience = 0;
  config.trainer.max_seconds = 0;
  if (config.lr_schedule && config.lr_schedule->total_steps > 0)
    config.lr_schedule->total_steps = config.trainer.max_steps;
  if (fs::exists(dir / "resume.safetensors"))
    config.resume_from = (dir / "resume.safetensors").string();
  return config;
}

void train_objective(const ObjectiveStudyPlan& plan, const StudyData& data, ObjectiveRun& run,
                     report::Progress& progress) {
  const std::string name = choice_name(run.objective);
  const fs::path dir(run.run_dir);
  if (fs::exists(dir / kFinishedFile)) {
    const nlohmann::json done = nlohmann::json::parse(std::ifstream(dir / kFinishedFile));
    run.steps = done.at("steps").get<int64_t>();
    run.train_seconds = done.at("seconds").get<double>();
    run.stop = done.at("stop").get<std::string>() + " (reused)";
    return;
  }
  const train::DpmTrainingConfig config = training_config(plan, data, run.objective, dir);
  train::JacobianTrackerOptions jacobian;
  jacobian.every = plan.track_every;
  jacobian.snr_db = plan.track_snr;
  jacobian.probes = plan.probes;
  jacobian.seed = plan.seed;
  train::SpectralTrackerOptions spectral;
  spectral.every = plan.track_every;
  spectral.seed = plan.seed;
  const Tensor clean = datasets::with_sample_shape(data.set.val, data.model_shape);
  train::DpmTrainingExtras extras;
  // What `dpmlab train` records of its data, so the evaluations (and `dpmlab audit`) find the GMM.
  const nlohmann::json describe = {
      {"source", plan.data},
      {"sample_shape", data.set.sample_shape.vec()},
      {"normalization", datasets::normalization_to_json(data.set.normalization)},
      {"model_shape", data.model_shape.vec()}};
  extras.checkpoint_metadata = {{datasets::kTrainingDataMetadataKey, describe.dump()}};
  extras.model_callbacks = [&](const std::shared_ptr<nn::NoiseModel>& model,
                               const diffusion::Objective& objective) {
    const diffusion::GmmOracle oracle(data.gmm, objective.schedule());
    return std::vector<std::shared_ptr<train::Callback>>{
        std::make_shared<train::SpectralTracker>(*model, spectral),
        std::make_shared<train::JacobianTracker>(
            model, objective.schedule(), objective.options().target, clean, jacobian, &oracle),
        std::make_shared<StepStatus>(progress, name, config.trainer.max_steps)};
  };
  const train::DpmTrainingOutput output = train::train_dpm(
      config, datasets::with_sample_shape(data.set.train, data.model_shape), clean, {}, extras);
  const train::TrainResult& result = output.result;
  if (result.reason == train::StopReason::interrupted)
    throw std::runtime_error("interrupted while training " + name + " at step " +
                             std::to_string(result.steps) +
                             "; run the same command again to resume");
  run.steps = result.steps;
  run.train_seconds = result.seconds;
  run.stop = std::string(train::stop_reason_name(result.reason)) + ": " + result.message;
  report::write_text(
      dir / kFinishedFile,
      nlohmann::json{{"steps", run.steps}, {"seconds", run.train_seconds}, {"stop", run.stop}}.dump(
          2) +
          "\n");
}

// The bound and the denoisers of the trained network; eps*'s denoisers with the first objective.
void evaluate_objective(const ObjectiveStudyPlan& plan, const StudyData& data, bool with_oracle,
                        ObjectiveRun& run, ObjectiveStudyResults& results) {
  const fs::path checkpoint = fs::path(run.run_dir) / "best.safetensors";
  if (!fs::exists(checkpoint))
    throw std::runtime_error(checkpoint.string() + " is missing: the training of " +
                             choice_name(run.objective) + " left no checkpoint");
  report::NullProgress quiet;
  NllBoundPlan bound;
  bound.checkpoint = checkpoint.string();
  bound.data = plan.data;
  bound.samples = plan.nll_samples;
  bound.seed = plan.seed;
  run.bound = experiments::run(bound, quiet);

  DenoiseBenchPlan denoise;
  denoise.checkpoint = checkpoint.string();
  denoise.experiments = {DenoiseBenchPart::nmse};
  denoise.samples = plan.denoise_samples;
  denoise.snr = plan.denoise_snr;
  denoise.oracle_T = {diffusion::Schedule::from_json(data.config.schedule).T()};
  denoise.estimators = DenoiseEstimators::cheap;
  denoise.predictors = with_oracle ? std::vector<DenoisePredictor>{DenoisePredictor::oracle,
                                                                   DenoisePredictor::network}
                                   : std::vector<DenoisePredictor>{DenoisePredictor::network};
  denoise.grid_images = 0;
  denoise.seed = plan.seed;
  // Later runs' reference rows (CME, LMMSE, LS) repeat the first run's: the same observations.
  for (diffusion::DenoiseBenchEntry& entry : experiments::run(denoise, quiet).nmse)
    if (entry.predictor == "network")
      run.denoise.push_back(std::move(entry));
    else if (with_oracle)
      results.oracle_denoise.push_back(std::move(entry));
  run.trajectory = read_training_metrics(fs::path(run.run_dir) / "metrics.jsonl");
  report::write(run.trajectory, fs::path(run.run_dir) / "report");
}

}  // namespace

std::string ObjectiveStudyUnit::stage() const {
  return std::string(kind == Kind::train ? "train " : "evaluate ") + choice_name(objective);
}

void ObjectiveStudyPlan::validate() const {
  if (data.empty()) throw PlanError("data", "is required (a GMM data set directory)");
  if (objectives.empty()) throw PlanError("objectives", "is empty");
  for (size_t i = 0; i < objectives.size(); ++i)
    for (size_t j = i + 1; j < objectives.size(); ++j)
      if (objectives[i] == objectives[j])
        throw PlanError("objectives",
                        std::string("'") + choice_name(objectives[i]) + "' is given twice");
  require_finite("hybrid_lambda", hybrid_lambda, 0.0, false, 1e6);
  require_range("steps", steps, 0, 1'000'000'000);
  require_range("track_every", track_every, 1, 1'000'000'000);
  require_list("track_snr", track_snr);
  require_range("probes", probes, 1, 1024);
  require_range("nll_samples", nll_samples, 1, 10'000'000);
  require_range("denoise_samples", denoise_samples, 1, 10'000'000);
  require_list("denoise_snr", denoise_snr);
}

ObjectiveStudyPlan ObjectiveStudyPlan::from_json(const nlohmann::json& json) {
  const ObjectiveStudyPlan plan = plan_from_json<ObjectiveStudyPlan>(json);
  plan.validate();
  return plan;
}

std::vector<ObjectiveStudyUnit> ObjectiveStudyPlan::units() const {
  std::vector<ObjectiveStudyUnit> out;
  for (StudyObjective objective : objectives) {
    out.push_back({ObjectiveStudyUnit::Kind::train, objective});
    out.push_back({ObjectiveStudyUnit::Kind::evaluate, objective});
  }
  return out;
}

diffusion::ObjectiveOptions ObjectiveStudyPlan::objective_options(
    StudyObjective objective, const diffusion::ObjectiveOptions& base) const {
  diffusion::ObjectiveOptions options;
  options.target = base.target;
  options.reverse_variance = base.reverse_variance;
  switch (objective) {
    case StudyObjective::simple:
      options.loss = diffusion::LossKind::simple;
      break;
    case StudyObjective::vlb:
    case StudyObjective::vlb_importance:
      options.loss = diffusion::LossKind::vlb;
      options.importance_sampling = objective == StudyObjective::vlb_importance;
      break;
    case StudyObjective::hybrid:
      options.loss = diffusion::LossKind::hybrid;
      options.hybrid_lambda = hybrid_lambda;
      break;
  }
  return options;
}

ObjectiveStudyResults run(const ObjectiveStudyPlan& plan, report::Progress& progress) {
  plan.validate();
  if (plan.runs.empty()) throw PlanError("runs", "is required (where the trainings go)");
  const auto started = std::chrono::steady_clock::now();
  const StudyData data = read_study_data(plan);
  ObjectiveStudyResults results;
  results.plan = plan;
  results.model = data.config.model;
  Rng init(0);
  results.parameters = nn::make_noise_model(data.config.model, init)->parameter_count();
  results.dim = data.gmm.dim;
  results.T = diffusion::Schedule::from_json(data.config.schedule).T();
  for (StudyObjective objective : plan.objectives) {
    ObjectiveRun run;
    run.objective = objective;
    run.run_dir = (fs::path(plan.runs) / choice_name(objective)).string();
    results.runs.push_back(run);
  }
  const std::vector<ObjectiveStudyUnit> units = plan.units();
  progress.begin(static_cast<int64_t>(units.size()));
  for (const ObjectiveStudyUnit& unit : units) {
    const size_t index = static_cast<size_t>(
        std::find(plan.objectives.begin(), plan.objectives.end(), unit.objective) -
        plan.objectives.begin());
    progress.status(unit.stage());
    if (unit.kind == ObjectiveStudyUnit::Kind::train)
      train_objective(plan, data, results.runs[index], progress);
    else
      evaluate_objective(plan, data, index == 0, results.runs[index], results);
    progress.advance(unit.stage());
  }
  progress.finish();
  results.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return results;
}

}  // namespace dpm::experiments
