#include "nn/checkpoint.hpp"

#include <stdexcept>

namespace dpm::nn {

void save_state(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, module.state_dict(), metadata);
}

void save_model(const std::string& path, const NoiseModel& model,
                std::map<std::string, std::string> metadata) {
  metadata[kConfigMetadataKey] = model.config().dump();
  save_state(path, model, metadata);
}

void load_state(Module& module, const std::string& path) {
  load_state(module, read_safetensors(path));
}

void load_state(Module& module, const SafeTensors& file) {
  try {
    module.load_state_dict(file.tensors);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("checkpoint '" + file.source + "' does not match " + e.what());
  }
}

nlohmann::json read_config(const SafeTensors& file) {
  auto found = file.metadata.find(kConfigMetadataKey);
  if (found == file.metadata.end())
    throw std::runtime_error("checkpoint '" + file.source +
                             "' has no model config (metadata key '" + kConfigMetadataKey + "')");
  try {
    return nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("checkpoint '" + file.source + "': model config under '" +
                             kConfigMetadataKey + "' is not valid JSON: " + e.what());
  }
}

std::shared_ptr<NoiseModel> load_model(const std::string& path) {
  SafeTensors file = read_safetensors(path);
  nlohmann::json config = read_config(file);
  // The initial weights are overwritten by the load, so any fixed seed does.
  Rng rng(0);
  std::shared_ptr<NoiseModel> model;
  try {
    model = make_noise_model(config, rng);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("checkpoint '" + path +
                             "': cannot rebuild the model from its config: " + e.what());
  }
  load_state(*model, file);
  return model;
}

}  // namespace dpm::nn
