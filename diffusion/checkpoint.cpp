#include "diffusion/checkpoint.hpp"

#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "nn/checkpoint.hpp"
#include "nn/config_reader.hpp"

namespace dpm::diffusion {

std::map<std::string, std::string> dpm_checkpoint_metadata(const nn::NoiseModel& model,
                                                           const Schedule& schedule,
                                                           const ObjectiveOptions& objective) {
  return {{nn::kConfigMetadataKey, model.config().dump()},
          {kScheduleMetadataKey, schedule.to_json().dump()},
          {kObjectiveMetadataKey, objective.to_json().dump()}};
}

void save_dpm_checkpoint(const std::string& path, const DpmCheckpoint& checkpoint) {
  std::map<std::string, std::string> metadata = checkpoint.metadata;
  for (auto& [key, value] :
       dpm_checkpoint_metadata(*checkpoint.model, checkpoint.schedule, checkpoint.objective))
    metadata[key] = std::move(value);
  nn::save_state(path, *checkpoint.model, metadata);
}

DpmCheckpoint load_dpm_checkpoint(const std::string& path) {
  SafeTensors file = read_safetensors(path);
  auto metadata_json = [&](const char* key) -> std::optional<nlohmann::json> {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) return std::nullopt;
    try {
      return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("checkpoint '" + path + "': metadata '" + key +
                               "' is not valid JSON: " + e.what());
    }
  };
  auto fail = [&](const std::string& what) {
    return std::runtime_error("checkpoint '" + path + "': " + what);
  };
  std::optional<nlohmann::json> schedule_json = metadata_json(kScheduleMetadataKey);
  if (!schedule_json)
    throw fail(std::string("no '") + kScheduleMetadataKey +
               "' metadata (not written by train_dpm?)");
  std::optional<nlohmann::json> objective_json = metadata_json(kObjectiveMetadataKey);
  try {
    // Without an objective entry the network is taken to predict eps (the paper's target).
    DpmCheckpoint checkpoint{
        nullptr, Schedule::from_json(*schedule_json),
        objective_json ? ObjectiveOptions::from_json(*objective_json) : ObjectiveOptions{},
        file.metadata};
    Rng rng(0);  // the initial weights are overwritten by the load
    checkpoint.model = nn::make_noise_model(nn::read_config(file), rng);
    nn::load_state(*checkpoint.model, file);
    return checkpoint;
  } catch (const std::invalid_argument& e) {
    throw fail(e.what());
  }
}

std::shared_ptr<NetworkPredictor> make_predictor(const DpmCheckpoint& checkpoint,
                                                 int64_t max_batch) {
  return std::make_shared<NetworkPredictor>(
      checkpoint.model, checkpoint.schedule,
      NetworkPredictorOptions{checkpoint.objective.target, max_batch});
}

}  // namespace dpm::diffusion
