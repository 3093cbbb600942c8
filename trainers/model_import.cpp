#include "trainers/model_import.hpp"

#include <stdexcept>

#include "autograd/io/safetensors.hpp"
#include "nn/checkpoint.hpp"

namespace dpm::train {

diffusion::DpmCheckpoint import_state_dict(const std::string& path, const nlohmann::json& model_config,
                                const diffusion::Schedule& schedule,
                                const diffusion::ObjectiveOptions& objective) {
  objective.validate();
  objective.last_step_for(schedule.T());
  Rng rng(0);  // the initial weights are all overwritten by the state_dict
  diffusion::DpmCheckpoint checkpoint{nn::make_noise_model(model_config, rng), schedule, objective, {}};

  const SafeTensors file = read_safetensors(path, SafetensorsReadOptions{.int64_as_float32 = true});
  try {
    checkpoint.model->load_state_dict(file.tensors);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("state_dict '" + path + "' does not fit the model of config " +
                             checkpoint.model->config().dump() + ": " + e.what());
  }
  return checkpoint;
}

}  // namespace dpm::train
