#include "experiments/prior_inputs.hpp"

#include <filesystem>
#include <stdexcept>

#include "datasets/data_files.hpp"
#include "experiments/plan.hpp"

namespace dpm::experiments {

PriorInputs read_prior_inputs(const std::string& gmm, const std::string& checkpoint) {
  namespace fs = std::filesystem;
  PriorInputs in{gmm, {}, std::nullopt, {}, {}};
  datasets::TrainingData& data = in.training_data;
  if (!checkpoint.empty()) {
    in.network = diffusion::load_dpm_checkpoint(checkpoint);
    data = datasets::training_data(in.network->metadata, checkpoint);
  }
  const fs::path beside_data = fs::path(data.source) / datasets::kGmmFileName;
  if (in.gmm_path.empty() && !data.source.empty() && fs::exists(beside_data))
    in.gmm_path = beside_data.string();
  if (in.gmm_path.empty())
    throw PlanError("gmm", "is required: the prior, a " + std::string(datasets::kGmmFileName) +
                               " written by `dpmlab gmm make`");
  if (!fs::exists(in.gmm_path)) throw PlanError("gmm", "'" + in.gmm_path + "' does not exist");
  in.gmm = datasets::load_gmm(in.gmm_path);

  if (in.network) {
    try {
      in.network_shape = data.model_shape ? *data.model_shape
                                          : datasets::model_input_shape(in.network->model->config(),
                                                                        Shape{in.gmm.dim});
    } catch (const std::invalid_argument& e) {
      throw PlanError("checkpoint", e.what());
    }
    if (in.network_shape.numel() != in.gmm.dim)
      throw PlanError("gmm", "the GMM has dimension " + std::to_string(in.gmm.dim) +
                                 ", the network (--checkpoint) takes samples of shape " +
                                 in.network_shape.str());
  }
  return in;
}

}  // namespace dpm::experiments
