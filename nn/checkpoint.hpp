#pragma once
// Checkpoints: a module's state_dict() in a safetensors file (dotted names that line up with
// PyTorch state_dicts), plus free-form string metadata. A NoiseModel's config travels as a JSON
// string under kConfigMetadataKey so the model can be rebuilt from the file alone (load_model).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "nn/module.hpp"
#include "nn/noise_model.hpp"

namespace dpm::nn {

inline constexpr const char* kConfigMetadataKey = "dpmlab.config";

void save_state(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata = {});
// save_state with model.config() stored (as compact JSON) under kConfigMetadataKey.
void save_model(const std::string& path, const NoiseModel& model,
                std::map<std::string, std::string> metadata = {});

// Module::load_state_dict from the file's tensors: a mismatch throws std::runtime_error naming
// the file and every missing, unexpected and mis-shaped tensor, and leaves the module untouched.
void load_state(Module& module, const std::string& path);
void load_state(Module& module, const SafeTensors& file);

// The config stored by save_model; throws std::runtime_error naming the file when it is absent
// or not valid JSON.
nlohmann::json read_config(const SafeTensors& file);

// Rebuilds the model from the stored config (make_noise_model) and loads its weights strictly.
std::shared_ptr<NoiseModel> load_model(const std::string& path);

}  // namespace dpm::nn
