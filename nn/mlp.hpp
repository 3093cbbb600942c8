#pragma once
// ResidualMLP: the benchmark network for vector data (SPEC §3):
//   te = time_mlp(sinusoidal(t)),  time_mlp = Linear(128 -> W), SiLU, Linear(W -> W)
//   h = in_proj(x);  depth x  h <- h + fc2(SiLU(fc1(SiLU(h + te))));  out = out_proj(SiLU(h))
// Input [B, *] with prod(*) = dim (e.g. [B, N] or [B, 1, N]); the output has the input's shape.
// Parameter names: time_mlp.0.weight, in_proj.weight, blocks.3.fc2.weight, out_proj.weight.
#include <memory>

#include "nn/linear.hpp"
#include "nn/module_list.hpp"
#include "nn/noise_model.hpp"
#include "nn/sequential.hpp"
#include "nn/time_embedding.hpp"

namespace dpm::nn {

struct ResidualMLPOptions {
  int64_t dim = 64;  // N, the data dimension
  int64_t width = 512;
  int64_t depth = 4;
  int64_t time_embedding_size = 128;

  nlohmann::json to_json() const;  // {"arch": "mlp", ...}
  static ResidualMLPOptions from_json(const nlohmann::json& config);
};

// h + fc2(SiLU(fc1(SiLU(h + te)))), both Linear(W -> W).
class ResidualMLPBlock : public Module {
 public:
  ResidualMLPBlock(int64_t width, Rng& rng);
  Variable forward(const Variable& h, const Variable& te);

 private:
  std::shared_ptr<Linear> fc1_, fc2_;
};

class ResidualMLP : public NoiseModel {
 public:
  ResidualMLP(const ResidualMLPOptions& options, Rng& rng);
  Variable forward(const Variable& x, const std::vector<int64_t>& t) override;
  nlohmann::json config() const override { return options_.to_json(); }
  const ResidualMLPOptions& options() const { return options_; }

 private:
  ResidualMLPOptions options_;
  std::shared_ptr<SinusoidalTimeEmbedding> time_embedding_;
  std::shared_ptr<Sequential> time_mlp_;
  std::shared_ptr<Linear> in_proj_;
  std::shared_ptr<ModuleList<ResidualMLPBlock>> blocks_;
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace dpm::nn
