#pragma once
// NoiseModel: the base of every diffusion network eps_theta(x_t, t), and the factory that
// rebuilds any of them from its JSON config (checkpoints store config() beside the weights).
#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "nn/module.hpp"

namespace dpm::nn {

class NoiseModel : public Module {
 public:
  using Module::Module;
  // x: a batch of noisy samples [B, ...]; t: the 0-based step index of each sample (the network
  // sees t - 1; docs/protocol.md, Schedules). Returns the predicted noise, shaped like x.
  virtual Variable forward(const Variable& x, const std::vector<int64_t>& t) = 0;
  // Everything needed to rebuild the architecture: {"arch": ..., options...}.
  virtual nlohmann::json config() const = 0;
  // The time embedding the network's blocks (and FiLM layers) see at the steps t,
  // [t.size(), width]; undefined (the default) for a network without one.
  virtual Variable embed_time(const std::vector<int64_t>& t);

 protected:
  // Throws std::invalid_argument unless t holds one index per sample of x.
  void check_steps(const Variable& x, const std::vector<int64_t>& t) const;
};

// Whether the model config names a network of flat vectors (the residual MLP, the two-layer net):
// its samples are [N] with N = config["dim"].
bool takes_flat_vectors(const nlohmann::json& config);

// Builds the model config["arch"] names ("unet1d", "unet2d", "mlp") with fresh weights drawn
// from rng. Missing options take their defaults; a bad or unknown field throws
// std::invalid_argument naming it.
std::shared_ptr<NoiseModel> make_noise_model(const nlohmann::json& config, Rng& rng);

}  // namespace dpm::nn
