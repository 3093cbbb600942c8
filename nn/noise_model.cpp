#include "nn/noise_model.hpp"

#include <stdexcept>
#include <string>

#include "nn/mlp.hpp"
#include "nn/two_layer.hpp"
#include "nn/unet.hpp"

namespace dpm::nn {

void NoiseModel::check_steps(const Variable& x, const std::vector<int64_t>& t) const {
  if (x.ndim() < 1 || static_cast<int64_t>(t.size()) != x.size(0))
    throw std::invalid_argument(type_name() + ": need one step index per sample, got " +
                                std::to_string(t.size()) + " for input " + x.shape().str());
}

Variable NoiseModel::embed_time(const std::vector<int64_t>&) {
  return {};
}

bool takes_flat_vectors(const nlohmann::json& config) {
  const std::string arch = config.is_object() ? config.value("arch", "") : "";
  return arch == "mlp" || arch == "two_layer";
}

std::shared_ptr<NoiseModel> make_noise_model(const nlohmann::json& config, Rng& rng) {
  if (!config.is_object() || !config.contains("arch") || !config["arch"].is_string())
    throw std::invalid_argument(
        "make_noise_model: config needs a string field 'arch' (\"unet1d\", \"unet2d\", "
        "\"mlp\" or \"two_layer\"), got " +
        config.dump());
  const std::string arch = config["arch"].get<std::string>();
  try {
    if (arch == "unet1d" || arch == "unet2d")
      return std::make_shared<UNet>(UNetOptions::from_json(config), rng);
    if (arch == "mlp")
      return std::make_shared<ResidualMLP>(ResidualMLPOptions::from_json(config), rng);
    if (arch == "two_layer")
      return std::make_shared<TwoLayerNet>(TwoLayerOptions::from_json(config), rng);
  } catch (const std::invalid_argument& e) {
    // Options that parse but do not fit together (GroupNorm groups vs channels, an odd
    // time-embedding size) surface from a layer's constructor: say which config it was.
    throw std::invalid_argument("make_noise_model(" + arch + "): " + e.what());
  }
  throw std::invalid_argument(
      "make_noise_model: field 'arch' must be \"unet1d\", \"unet2d\", "
      "\"mlp\" or \"two_layer\", got \"" +
      arch + "\"");
}

}  // namespace dpm::nn
