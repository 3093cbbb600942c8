#pragma once
// What the GMM experiments read the same way (denoise-bench, inverse-bench): an optional trained
// network and the GMM prior, the plan's or else the one beside the network's training data.
#include <optional>
#include <string>

#include "autograd/shape.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"

namespace dpm::experiments {

struct PriorInputs {
  std::string gmm_path;  // as resolved: the given path, else the GMM beside the training data
  datasets::Gmm gmm;
  std::optional<diffusion::DpmCheckpoint> network;
  Shape network_shape;  // one sample as the network takes it (empty without a network)
  datasets::TrainingData training_data;  // the network's (empty without a network)
};

// `checkpoint` may be empty (no network). Throws PlanError naming the plan field "gmm" or
// "checkpoint" when the files do not fit (no GMM given and none beside the training data, a GMM
// of another dimension than the network's samples), std::runtime_error for an unreadable file.
PriorInputs read_prior_inputs(const std::string& gmm, const std::string& checkpoint);

}  // namespace dpm::experiments
