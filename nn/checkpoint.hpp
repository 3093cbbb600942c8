#pragma once
// Checkpoints: a module's parameters and buffers in a safetensors file under their dotted names
// (the names of Module::named_parameters / named_buffers, so they line up with PyTorch
// state_dicts), plus free-form string metadata. A NoiseModel's config travels as a JSON string
// under kConfigMetadataKey so the model can be rebuilt from the file alone (load_model).
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

// Every parameter, then every buffer, by dotted name in registration order; shares storage.
std::vector<std::pair<std::string, Tensor>> state_tensors(const Module& module);

void save_state(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata = {});
// save_state with model.config() stored (as compact JSON) under kConfigMetadataKey.
void save_model(const std::string& path, const NoiseModel& model,
                std::map<std::string, std::string> metadata = {});

// How a file's tensors differ from the module's parameters and buffers: each missing or
// mis-shaped tensor in the module's order, then each unexpected one in the file's order, as
// "missing tensor 'a.weight' (expected shape [4, 2])" etc.; empty when they match exactly.
std::vector<std::string> state_mismatches(const Module& module, const SafeTensors& file);

// Strict, like PyTorch's load_state_dict(strict=True): the file must hold exactly the module's
// parameters and buffers with equal shapes, else std::runtime_error lists every missing,
// unexpected and mis-shaped tensor (naming the file) and the module is left untouched. Values are
// copied into the existing storage, so Variables, arena views and buffer handles stay valid.
void load_state(Module& module, const std::string& path);
void load_state(Module& module, const SafeTensors& file);

// The config stored by save_model; throws std::runtime_error naming the file when it is absent
// or not valid JSON.
nlohmann::json read_config(const SafeTensors& file);

// Rebuilds the model from the stored config (make_noise_model) and loads its weights strictly.
std::shared_ptr<NoiseModel> load_model(const std::string& path);

}  // namespace dpm::nn
