#include "trainers/model_import.hpp"

#include <stdexcept>
#include <vector>

#include "autograd/io/safetensors.hpp"
#include "nn/checkpoint.hpp"

namespace dpm::train {

DpmCheckpoint import_state_dict(const std::string& path, const nlohmann::json& model_config,
                                const diffusion::Schedule& schedule,
                                const diffusion::ObjectiveOptions& objective) {
  objective.validate();
  objective.last_step_for(schedule.T());
  Rng rng(0);  // the initial weights are all overwritten by the state_dict
  DpmCheckpoint checkpoint{nn::make_noise_model(model_config, rng), schedule, objective, {}};

  const SafeTensors file = read_safetensors(path, SafetensorsReadOptions{.int64_as_float32 = true});
  const std::vector<std::string> mismatches = nn::state_mismatches(*checkpoint.model, file);
  if (!mismatches.empty()) {
    std::string message = "state_dict '" + path + "' does not fit the model of config " +
                          checkpoint.model->config().dump() + ": " + mismatches.front();
    if (mismatches.size() > 1)
      message += " (and " + std::to_string(mismatches.size() - 1) + " more mismatches)";
    throw std::runtime_error(message);
  }
  nn::load_state(*checkpoint.model, file);
  return checkpoint;
}

}  // namespace dpm::train
