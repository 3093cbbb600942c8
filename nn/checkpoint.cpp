#include "nn/checkpoint.hpp"

#include <stdexcept>
#include <unordered_map>

namespace dpm::nn {

std::vector<std::pair<std::string, Tensor>> state_tensors(const Module& module) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& p : module.named_parameters()) tensors.emplace_back(p.name, p.variable.data());
  for (auto& buffer : module.named_buffers()) tensors.push_back(std::move(buffer));
  return tensors;
}

void save_state(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, state_tensors(module), metadata);
}

void save_model(const std::string& path, const NoiseModel& model,
                std::map<std::string, std::string> metadata) {
  metadata[kConfigMetadataKey] = model.config().dump();
  save_state(path, model, metadata);
}

void load_state(Module& module, const std::string& path) {
  load_state(module, read_safetensors(path));
}

std::vector<std::string> state_mismatches(const Module& module, const SafeTensors& file) {
  std::unordered_map<std::string, const Tensor*> stored;
  for (const auto& [name, tensor] : file.tensors) stored.emplace(name, &tensor);
  std::vector<std::string> problems;
  for (const auto& [name, destination] : state_tensors(module)) {
    auto found = stored.find(name);
    if (found == stored.end()) {
      problems.push_back("missing tensor '" + name + "' (expected shape " +
                         destination.shape().str() + ")");
      continue;
    }
    if (found->second->shape() != destination.shape())
      problems.push_back("tensor '" + name + "' has shape " + found->second->shape().str() +
                         ", expected " + destination.shape().str());
    stored.erase(found);
  }
  // Reported in file order, which is deterministic (the map above is not).
  for (const auto& [name, tensor] : file.tensors)
    if (stored.count(name))
      problems.push_back("unexpected tensor '" + name + "' (shape " + tensor.shape().str() +
                         ") that " + module.type_name() + " does not have");
  return problems;
}

void load_state(Module& module, const SafeTensors& file) {
  // Check everything before copying anything, so a mismatched file leaves the module as it was.
  const std::vector<std::string> problems = state_mismatches(module, file);
  if (!problems.empty()) {
    std::string message =
        "checkpoint '" + file.source + "' does not match " + module.type_name() + ": ";
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    throw std::runtime_error(message);
  }
  std::unordered_map<std::string, const Tensor*> stored;
  for (const auto& [name, tensor] : file.tensors) stored.emplace(name, &tensor);
  for (auto& [name, destination] : state_tensors(module)) destination.copy_(*stored.at(name));
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
