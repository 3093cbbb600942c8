#pragma once
// Trainer: a generic training loop over a dataset and a loss closure. It owns batching and
// shuffling (seeded), validation every epoch, early stopping, the best checkpoint, periodic
// resume files (everything needed to continue bitwise: weights, buffers, optimizer moments,
// EMA, every RNG stream, the data position, callback state), clean exit on SIGINT, a stop
// naming the step and the layer when a loss or gradient is not finite, and a warning when either
// spikes (SpikeDetector). Metrics go to JSONL.
//
// Data-parallel over MPI (docs/distributed.md): with R ranks in dist::Communicator::world(),
// every rank draws the same global batch and the same noise (one seed), computes the loss of its
// shard of the rows (Batch::shard), and the flat gradient arena is all-reduced in one call per
// step, so every rank applies the same optimizer step to the same weights; the result does not
// depend on R up to float summation order (BatchNorm: with sync_batchnorm). Rank 0 alone writes
// files and the progress line; a SIGINT on any rank stops every rank after the same step.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "autograd/state_dict.hpp"
#include "datasets/data_loader.hpp"
#include "distributed/communicator.hpp"
#include "nn/module.hpp"
#include "nn/optim/ema.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "nn/optim/optimizer.hpp"
#include "trainers/spike_detector.hpp"

namespace dpm::train {

struct TrainerOptions {
  int64_t batch_size = 128;
  int64_t max_epochs = 500;
  int64_t steps_per_epoch = 0;  // 0: one pass over the training data (last partial batch dropped)
  int64_t max_steps = 0;        // 0: no limit
  double max_seconds = 0;       // wall-clock budget; 0: none
  int64_t min_epochs = 50;      // early stopping never fires before this many epochs
  int64_t patience = 20;        // epochs without a better validation loss; 0: off
  // Per-step learning rate (base_lr, warmup, decay); unset: the optimizer's lr, constant.
  std::optional<optim::LrScheduleOptions> lr_schedule;
  double grad_clip = 0;  // max global gradient norm; 0: off
  double ema_decay = 0;  // 0: no EMA; else validation and the best checkpoint use it
  bool ema_warmup = false;
  int64_t log_every = 50;       // steps between metrics lines
  int64_t resume_every = 1000;  // steps between resume files; 0: only on SIGINT / at the end
  std::string out_dir;          // where checkpoints and metrics.jsonl go; empty: write nothing
  std::map<std::string, std::string> checkpoint_metadata;  // e.g. the model config
  uint64_t seed = 0;
  bool progress = true;  // the progress line on stderr
  // Loss and gradient-norm spike alarm: a warning on stderr and "spike": true in the metrics.
  SpikeDetectorOptions spike;
  // Data-parallel training (more than one rank in dist::Communicator::world()): steps between
  // checks that every rank holds the same weights (a checksum all-reduce; 0: never), and whether
  // BatchNorm layers normalise with the statistics of the whole global batch (synchronised, one
  // all-reduce per layer and pass) instead of their rank's shard (the default, as PyTorch's DDP).
  int64_t weight_check_every = 100;
  bool sync_batchnorm = false;
  // The ranks that train together; nullptr: dist::Communicator::world() (not in the JSON).
  dist::Communicator* communicator = nullptr;
};

// The loss of one batch; `rng` is the trainer's noise stream (saved in resume files).
using LossFn = std::function<Variable(const datasets::Batch& batch, Rng& rng)>;

struct StepInfo {
  int64_t step = 0;  // steps completed, including this one
  int64_t epoch = 0;
  double loss = 0;
  double lr = 0;
  bool logging = false;  // a metrics line is written for this step
};

struct EpochInfo {
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;
  double train_loss = 0;  // mean over the epoch's steps
  std::optional<double> val_loss;
  bool improved = false;
};

// Trackers plug in here. Their state_dict() is stored in resume files under
// "callback.<name>." and handed back on resume.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual std::string name() const = 0;
  // `record` is the metrics line of a logging step; callbacks may add fields to it.
  virtual void on_step(const StepInfo& info, nlohmann::json& record) {}
  virtual void on_epoch(const EpochInfo& info, nlohmann::json& record) {}
  virtual NamedTensors state_dict() const { return {}; }
  virtual void load_state_dict(const NamedTensors& state) {}
};

enum class StopReason {
  max_epochs,
  max_steps,
  time_budget,
  early_stopping,
  interrupted,
  non_finite
};
const char* stop_reason_name(StopReason reason);

struct TrainResult {
  StopReason reason = StopReason::max_epochs;
  int64_t steps = 0;
  int64_t epochs = 0;
  std::optional<double> best_val_loss;
  int64_t best_epoch = 0;
  double seconds = 0;
  std::string message;  // why it stopped, in words (names the step/layer for non-finite)
};

class Trainer {
 public:
  // The optimizer must be built on model.arena(). val_data may be undefined (no validation:
  // then no early stopping and the best checkpoint is the last one).
  Trainer(nn::Module& model, optim::Optimizer& optimizer, LossFn loss, Tensor train_data,
          Tensor val_data, TrainerOptions options);
  ~Trainer();

  void add_callback(std::shared_ptr<Callback> callback);

  // Continues from a resume file written by this trainer (same model, optimizer kind, data) in
  // this format version; a file of another version is refused, naming both versions.
  void resume(const std::string& path);
  // Writes a resume file now (also done every resume_every steps and on SIGINT): state_dict()
  // as tensors, the scalar fields of the run as JSON metadata under "dpmlab.resume".
  void save_resume(const std::string& path) const;
  static constexpr int kResumeFormatVersion = 2;

  // The tensors of a resume file: the model's under "model.", the optimizer's under
  // "optimizer.", the EMA's under "ema." and each callback's under "callback.<name>.".
  NamedTensors state_dict() const;
  // Strict: every part gets exactly its entries, and an entry under no part's prefix is an
  // error naming it.
  void load_state_dict(const NamedTensors& state);

  TrainResult fit();

  // Mean loss over a dataset under NoGradGuard, in eval mode, with a fixed noise stream.
  double evaluate(const Tensor& data);

  int64_t step() const { return step_; }
  int64_t epoch() const { return epoch_; }
  optim::Ema* ema() { return ema_.get(); }
  std::string resume_path() const;   // <out_dir>/resume.safetensors
  std::string best_path() const;     // <out_dir>/best.safetensors
  std::string metrics_path() const;  // <out_dir>/metrics.jsonl

 private:
  // The scalar fields of a resume file, declared once for save_resume and resume.
  struct ResumeField;
  static const std::vector<ResumeField>& resume_fields();
  // Calls visit(prefix, part) for every part of state_dict(), on `self` const or not.
  template <typename Self, typename Visit>
  static void visit_state_parts(Self& self, Visit&& visit);

  bool run_step(TrainResult& result, double& epoch_loss_sum);
  bool detect_spikes(int64_t step, double loss, double grad_norm);
  void end_epoch(TrainResult& result, double train_loss);
  void log(const nlohmann::json& record);
  bool writes_files() const;  // out_dir set, and rank 0
  // The global batch's rows this rank computes (unset on a single process).
  std::optional<datasets::RowRange> shard_of_batch(int64_t batch_rows) const;
  void check_weights_agree() const;
  void save_best();
  int64_t steps_per_epoch() const;

  nn::Module& model_;
  optim::Optimizer& optimizer_;
  LossFn loss_;
  Tensor val_data_;
  TrainerOptions options_;
  std::optional<optim::LrSchedule> schedule_;
  datasets::DataLoader loader_;
  Rng noise_rng_;
  std::unique_ptr<optim::Ema> ema_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  SpikeDetector loss_spikes_;
  SpikeDetector grad_norm_spikes_;

  dist::Communicator& comm_;
  bool interrupted_ = false;  // SIGINT on any rank, agreed on at the last step

  int64_t step_ = 0;
  int64_t epoch_ = 0;
  int64_t step_in_epoch_ = 0;
  double epoch_loss_sum_ = 0;  // over the current epoch's completed steps (saved for resume)
  std::optional<double> best_val_;
  int64_t best_epoch_ = 0;
  int64_t epochs_since_best_ = 0;
  double elapsed_before_ = 0;  // seconds spent in earlier runs (resume)
};

}  // namespace dpm::train
