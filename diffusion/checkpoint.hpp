#pragma once
// DpmCheckpoint: a trained noise network for inference, as train::train_dpm writes it: the model
// (its config and weights), its schedule and its objective (the network's output
// parameterisation) from the checkpoint's metadata, so the checkpoint alone rebuilds all of it.
// The commands that only evaluate a network (denoise-bench, bound, audit, sample) need nothing
// of the trainers.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "diffusion/objective.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/noise_model.hpp"

namespace dpm::diffusion {

// Checkpoint metadata keys beside nn::kConfigMetadataKey (the model config).
inline constexpr const char* kScheduleMetadataKey = "dpmlab.schedule";
inline constexpr const char* kObjectiveMetadataKey = "dpmlab.objective";

struct DpmCheckpoint {
  std::shared_ptr<nn::NoiseModel> model;  // weights loaded
  Schedule schedule;
  ObjectiveOptions objective;  // objective.target is the network's output
  std::map<std::string, std::string> metadata;
};

// The entries train::train_dpm writes into every checkpoint's metadata and load_dpm_checkpoint
// reads: the model config, the schedule and the objective (whose target is the network's output).
std::map<std::string, std::string> dpm_checkpoint_metadata(const nn::NoiseModel& model,
                                                           const Schedule& schedule,
                                                           const ObjectiveOptions& objective);

// Throws std::runtime_error naming the file when a needed metadata entry is absent or invalid.
DpmCheckpoint load_dpm_checkpoint(const std::string& path);
// Writes what load_dpm_checkpoint reads back: the model's state, and its metadata with the
// dpm_checkpoint_metadata entries set from the checkpoint's fields (atomically, like every save).
void save_dpm_checkpoint(const std::string& path, const DpmCheckpoint& checkpoint);

// A NoisePredictor over the checkpoint's model, with its schedule and output parameterisation.
std::shared_ptr<NetworkPredictor> make_predictor(const DpmCheckpoint& checkpoint,
                                                 int64_t max_batch = 1024);

}  // namespace dpm::diffusion
