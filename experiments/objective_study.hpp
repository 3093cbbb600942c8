#pragma once
// What the training objective changes (docs/lipschitz.md, "Tracking while training"; the
// objectives: diffusion/objective.hpp): one network trained on the same GMM data with L_simple,
// L_vlb (t uniform, and t importance-sampled) and L_hybrid under the same number of steps, each
// tracked while it trains (the layers' spectral norms, and the empirical Lipschitz constants of
// mu_theta(., t) at the steps of a few SNRs: trainers/jacobian_tracker.hpp), then evaluated
// against the GMM's exact quantities: the variational bound on the NLL (nats/dim) beside the
// exact NLL, and the denoising NMSE of one-step Tweedie and mean forwarding over the CME's, with
// the network and with the exact eps*.
//
// Every training goes into its own run directory under `runs` (a `dpmlab train` run directory:
// metrics.jsonl, best.safetensors, resume.safetensors, report/); a finished one is reused and an
// interrupted one resumed, so a long study continues where it stopped.
//
//   ObjectiveStudyPlan plan;  plan.data = "runs/gmm";  plan.runs = "runs/objectives/runs";
//   const ObjectiveStudyResults results = run(plan, progress);
//   report::write(results, "runs/objectives");  // experiments/objective_study_report.hpp
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffusion/denoise_bench.hpp"
#include "diffusion/objective.hpp"
#include "experiments/nll_bound.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"
#include "experiments/training_report.hpp"

namespace dpm::experiments {

enum class StudyObjective { simple, vlb, vlb_importance, hybrid };
template <>
struct Choices<StudyObjective> {
  static constexpr std::array<std::pair<StudyObjective, const char*>, 4> values{
      {{StudyObjective::simple, "simple"},
       {StudyObjective::vlb, "vlb"},
       {StudyObjective::vlb_importance, "vlb-importance"},
       {StudyObjective::hybrid, "hybrid"}}};
};

struct ObjectiveStudyUnit {
  enum class Kind { train, evaluate } kind = Kind::train;
  StudyObjective objective = StudyObjective::simple;
  std::string stage() const;  // "train vlb", "evaluate vlb"
};

struct ObjectiveStudyPlan {
  std::string data;  // a GMM data set directory (`dpmlab gmm make`): its splits and GMM
  // A DpmTrainingConfig JSON for the model, schedule, optimizer and trainer; "": the defaults
  // (the residual MLP, paper_linear T = 300).
  std::string train_config;
  std::string runs;  // where the trainings go, one run directory per objective
  std::vector<StudyObjective> objectives{StudyObjective::simple, StudyObjective::vlb,
                                         StudyObjective::vlb_importance, StudyObjective::hybrid};
  double hybrid_lambda = 1e-3;
  int64_t steps = 0;  // training steps of every objective; 0: the config's max_steps
  int64_t track_every = 500;
  std::vector<double> track_snr{-10, 0, 10, 20};
  int64_t probes = 8;
  int64_t nll_samples = 1000;  // test samples of the variational bound
  int64_t denoise_samples = 500;
  std::vector<double> denoise_snr{-10, 0, 10, 20};
  uint64_t seed = 0;  // of the trainings (data order, noise, initial weights) and evaluations

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("data", plan.data);
    visit("train_config", plan.train_config);
    visit("runs", plan.runs);
    visit("objectives", plan.objectives);
    visit("hybrid_lambda", plan.hybrid_lambda);
    visit("steps", plan.steps);
    visit("track_every", plan.track_every);
    visit("track_snr", plan.track_snr);
    visit("probes", plan.probes);
    visit("nll_samples", plan.nll_samples);
    visit("denoise_samples", plan.denoise_samples);
    visit("denoise_snr", plan.denoise_snr);
    visit("seed", plan.seed);
  }
  void validate() const;  // throws PlanError naming the field; data is required (runs by run())
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static ObjectiveStudyPlan from_json(const nlohmann::json& json);  // validated

  std::vector<ObjectiveStudyUnit> units() const;  // train then evaluate, per objective
  // One study objective's options: its loss (and importance sampling, lambda) with the base
  // config's prediction target and reverse variance.
  diffusion::ObjectiveOptions objective_options(StudyObjective objective,
                                                const diffusion::ObjectiveOptions& base) const;
};

// What one objective's training and evaluation gave.
struct ObjectiveRun {
  StudyObjective objective = StudyObjective::simple;
  std::string run_dir;
  int64_t steps = 0;
  double train_seconds = 0;  // the run's own training time, resumed parts included
  std::string stop;          // why the training stopped
  NllBoundResults bound;
  std::vector<diffusion::DenoiseBenchEntry> denoise;  // the network's rows and the CME's
  TrainingTrajectory trajectory;
};

struct ObjectiveStudyResults {
  ObjectiveStudyPlan plan;
  nlohmann::json model;  // the model config
  int64_t parameters = 0, dim = 0, T = 0;
  std::vector<ObjectiveRun> runs;  // in plan.objectives order
  // eps* in the same denoisers on the same observations (objective-independent).
  std::vector<diffusion::DenoiseBenchEntry> oracle_denoise;
  double seconds = 0;
};

// Executes plan.units(): progress.begin(their number), one advance each; status() shows the
// training step. Throws PlanError naming data, train_config or runs for files that do not fit.
ObjectiveStudyResults run(const ObjectiveStudyPlan& plan, report::Progress& progress);

}  // namespace dpm::experiments
