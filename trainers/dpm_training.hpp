#pragma once
// train_dpm: trains a diffusion noise model end to end from one JSON-serialisable config: the
// model (nn::make_noise_model), the schedule, the objective, Adam/AdamW, and train::Trainer with
// all its options. The config is written to <out_dir>/config.used.json, and the model config,
// schedule and objective go into every checkpoint's metadata, so a checkpoint alone rebuilds the
// model, its schedule and its output parameterisation (diffusion::load_dpm_checkpoint).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffusion/objective.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/noise_model.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "trainers/trainer.hpp"

namespace dpm::train {

// Checkpoint metadata key of the training config, beside diffusion/checkpoint.hpp's keys of the
// schedule and the objective.
inline constexpr const char* kTrainingConfigMetadataKey = "dpmlab.training_config";

enum class OptimizerKind { adam, adamw };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adam;
  double lr = 1e-4;  // the paper's range is [1e-5, 1e-3], constant
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decay_all_parameters = false;
};

struct DpmTrainingConfig {
  nlohmann::json model;     // nn::make_noise_model config; default: the residual MLP, N = 64
  nlohmann::json schedule;  // diffusion::Schedule::from_json; default: paper_linear, T = 300
  diffusion::ObjectiveOptions objective;
  OptimizerConfig optimizer;
  // Unset: optimizer.lr throughout. Its base_lr is always optimizer.lr.
  std::optional<optim::LrScheduleOptions> lr_schedule;
  TrainerOptions trainer;   // checkpoint_metadata is filled by train_dpm, not configured
  uint64_t init_seed = 0;   // the model's initial weights: Rng(init_seed)
  std::string resume_from;  // a resume file to continue from; empty: a fresh run

  DpmTrainingConfig();

  // Sections "model", "schedule", "objective", "optimizer", "lr_schedule" (null when unset) and
  // "training" (the trainer's options plus init_seed and resume_from). Every field is written.
  nlohmann::json to_json() const;
  // Strict: missing fields take the defaults; an unknown field, a wrong type or an out-of-range
  // value throws std::invalid_argument naming the section and the field. The schedule is
  // validated here; the model config when train_dpm builds the model.
  static DpmTrainingConfig from_json(const nlohmann::json& config);
};

struct DpmTrainingOutput {
  // With out_dir set, the weights of best.safetensors (the run's selected model, EMA-averaged
  // when EMA is on); otherwise the final weights, EMA-averaged when EMA is on.
  std::shared_ptr<nn::NoiseModel> model;
  diffusion::Schedule schedule;
  std::shared_ptr<diffusion::Objective> objective;
  TrainResult result;
};

// What a caller adds to a run beyond its config (so none of it is in the config's JSON).
struct DpmTrainingExtras {
  // Called once with the freshly built model and its objective (schedule, target); the callbacks
  // it returns are added like `callbacks`. For trackers that need the model, e.g. a
  // SpectralTracker or a JacobianTracker.
  std::function<std::vector<std::shared_ptr<Callback>>(
      const std::shared_ptr<nn::NoiseModel>& model, const diffusion::Objective& objective)>
      model_callbacks;
  // Stored in every checkpoint beside the entries train_dpm writes (e.g. how the data were
  // normalised, for whoever samples from the checkpoint). A key train_dpm writes is rejected.
  std::map<std::string, std::string> checkpoint_metadata;
};

// Sets the model config's data-dependent fields from one sample's shape as the model takes it
// (model_shape): an MLP's or two-layer net's dim, a U-Net's data_channels, and a two-layer net's
// steps (the schedule's T, which its time features span).
void fit_model_to_data(DpmTrainingConfig& config, const Shape& model_shape);

// Trains on train_data [n, ...] (the shape the model takes), validating on val_data (may be
// undefined: then no early stopping). Callbacks (trackers) are added to the trainer before it
// resumes or starts. Throws std::invalid_argument for a bad config or data the model rejects.
DpmTrainingOutput train_dpm(const DpmTrainingConfig& config, const Tensor& train_data,
                            const Tensor& val_data,
                            const std::vector<std::shared_ptr<Callback>>& callbacks = {},
                            const DpmTrainingExtras& extras = {});

}  // namespace dpm::train
