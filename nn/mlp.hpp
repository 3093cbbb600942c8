#pragma once
// ResidualMLP: the benchmark network for vector data (docs/protocol.md, The U-Net):
//   te = time_mlp(sinusoidal(t)),  time_mlp = Linear(128 -> W), SiLU, Linear(W -> W)
//   h = in_proj(x);  depth x  h <- h + fc2(SiLU(fc1(SiLU(h + te))));  out = out_proj(SiLU(h))
// With conditioning = film (an option) each block instead modulates its hidden layer,
//   h <- h + fc2(SiLU(FiLM(fc1(SiLU(h)), te))),
// so t can scale features, not only shift them: the posterior mean of a mixture prior is a
// t-dependent mixture of linear maps, which additive conditioning can only reach through the
// nonlinearity.
// Input [B, *] with prod(*) = dim (e.g. [B, N] or [B, 1, N]); the output has the input's shape.
// Parameter names: time_mlp.0.weight, in_proj.weight, blocks.3.fc2.weight, out_proj.weight.
#include <memory>

#include "nn/film.hpp"
#include "nn/linear.hpp"
#include "nn/module_list.hpp"
#include "nn/noise_model.hpp"
#include "nn/sequential.hpp"
#include "nn/time_embedding.hpp"

namespace dpm::nn {

enum class MlpConditioning { add, film };

struct ResidualMLPOptions {
  int64_t dim = 64;  // N, the data dimension
  int64_t width = 512;
  int64_t depth = 4;
  int64_t time_embedding_size = 128;
  MlpConditioning conditioning = MlpConditioning::add;

  nlohmann::json to_json() const;  // {"arch": "mlp", ..., "conditioning": "add" | "film"}
  static ResidualMLPOptions from_json(const nlohmann::json& config);
};

// h + fc2(SiLU(fc1(SiLU(h + te)))), both Linear(W -> W); with FiLM conditioning
// h + fc2(SiLU(film(fc1(SiLU(h)), te))).
class ResidualMLPBlock : public Module {
 public:
  ResidualMLPBlock(int64_t width, MlpConditioning conditioning, Rng& rng);
  Variable forward(const Variable& h, const Variable& te);
  // In h at fixed te: 1 + L(branch).
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

 private:
  std::shared_ptr<Linear> fc1_, fc2_;
  std::shared_ptr<FiLM> film_;  // null for additive conditioning
};

class ResidualMLP : public NoiseModel {
 public:
  ResidualMLP(const ResidualMLPOptions& options, Rng& rng);
  Variable forward(const Variable& x, const std::vector<int64_t>& t) override;
  nlohmann::json config() const override { return options_.to_json(); }
  Variable embed_time(const std::vector<int64_t>& t) override;  // time_mlp(sinusoidal(t))
  const ResidualMLPOptions& options() const { return options_; }
  // In x at fixed t: in_proj, the blocks, SiLU and out_proj multiply.
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;
  std::string lipschitz_bound_note() const override;

 private:
  ResidualMLPOptions options_;
  std::shared_ptr<SinusoidalTimeEmbedding> time_embedding_;
  std::shared_ptr<Sequential> time_mlp_;
  std::shared_ptr<Linear> in_proj_;
  std::shared_ptr<ModuleList<ResidualMLPBlock>> blocks_;
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace dpm::nn
