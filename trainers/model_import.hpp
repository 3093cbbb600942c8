#pragma once
// Models trained elsewhere: a state_dict of a PyTorch twin of dpmlab's networks
// (tools/torch_reference.py builds them from the same model config, with the same tensor names),
// saved with safetensors.torch.save_file, becomes a dpmlab checkpoint that `denoise-bench`,
// `audit` and `bound` load like one written by train_dpm (`sample` too for an MLP, whose data
// shape follows from its config).
#include <string>

#include <nlohmann/json.hpp>

#include "diffusion/checkpoint.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::train {

// Builds the model of `model_config` (nn::make_noise_model) and loads the state_dict at `path`
// into it, with the schedule and the objective (objective.target: what the network predicts) as
// its metadata. The file must hold exactly the model's parameters and buffers (BatchNorm running
// statistics and num_batches_tracked, which PyTorch stores as int64) by name and shape, in
// float32: otherwise std::runtime_error names the file, the first mismatch (a missing or
// unexpected name, or a wrong shape with both shapes) and how many others there are. A bad model
// config or an objective that does not fit the schedule throws std::invalid_argument.
diffusion::DpmCheckpoint import_state_dict(const std::string& path, const nlohmann::json& model_config,
                                const diffusion::Schedule& schedule,
                                const diffusion::ObjectiveOptions& objective);

}  // namespace dpm::train
