#pragma once
// The training report of a `dpmlab train` run directory, rendered from its metrics.jsonl at any
// time (also while the run goes on): the loss, every layer's spectral norm grouped by layer kind
// and the certified Lipschitz bound (when the run tracked them: --track-spectral), and the
// empirical Lipschitz constants of mu_theta(., t) at each tracked step beside the bounds of the
// exact stepwise CME and, on GMM data, the exact CME's norm at the same probe points
// (--track-jacobian; trainers/jacobian_tracker.hpp). A summary says, as measured, when the
// network's empirical constant first exceeds the hyperparameter bound 1 / sqrt(alpha_t) and how
// it ends relative to it and to the exact map's. docs/lipschitz.md explains how to read it.
//
//   const TrainingTrajectory trajectory = read_training_metrics("runs/train/metrics.jsonl");
//   report::write(trajectory, "runs/train/report");
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/report/files.hpp"

namespace dpm::experiments {

using StepValues = std::vector<std::pair<int64_t, double>>;  // (training step, value)

struct LayerTrajectory {
  std::string name, type;  // type: "Linear", "Conv1d", ...; "layer" when the run did not log it
  StepValues sigma;
};

// One tracked step's empirical constants over training, and its constants.
struct TrackedStepTrajectory {
  int64_t t = 0;
  double snr_db = 0;
  double log_concave_bound = 0, cme_lower = 0;
  std::optional<double> exact_cme_max, exact_cme_mean;
  StepValues mu_max, mu_mean, eps_max, eps_mean;
};

struct TrainingTrajectory {
  std::string source;               // the metrics file
  StepValues loss;                  // the logged training losses
  StepValues train_loss, val_loss;  // per epoch, at the epoch's last step
  std::vector<LayerTrajectory> layers;
  StepValues certified_bound;
  std::vector<TrackedStepTrajectory> tracked;
  int64_t lines = 0;

  bool has_spectral() const { return !layers.empty(); }
  bool has_jacobian() const { return !tracked.empty(); }
  const TrackedStepTrajectory* step(int64_t t) const;  // nullptr when t is not tracked
};

// Reads a metrics.jsonl; a line that is not a JSON object, or a known field of the wrong type, is
// a std::runtime_error naming the file, the line and the field. A missing file names itself.
TrainingTrajectory read_training_metrics(const std::filesystem::path& metrics_file);

// Per tracked step, as measured: the first scan whose max over the probes exceeds
// 1 / sqrt(alpha_t) (none: never), and the last scan's value over the bound and over the exact
// CME's max at the probes (NaN without a GMM).
struct CrossingSummary {
  int64_t t = 0;
  double snr_db = 0;
  std::optional<int64_t> first_above_bound;
  int64_t last_step = 0;
  double last_mu_max = 0, over_bound = 0, over_exact = 0;
};
std::vector<CrossingSummary> crossing_summary(const TrainingTrajectory& trajectory);

namespace report {

// training.md (also returned), tracking.csv (one row per scan and tracked step) and the plots:
// training_loss, sigma_<kind> per layer kind, certified_bound, mu_t<t> per tracked step. A run
// without tracking gets a report that says so and how to turn it on.
Written write(const TrainingTrajectory& trajectory, const std::filesystem::path& dir);

}  // namespace report
}  // namespace dpm::experiments
