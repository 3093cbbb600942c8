#include "nn/mlp.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/ops/shape.hpp"
#include "nn/activation.hpp"
#include "nn/config_reader.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

nlohmann::json ResidualMLPOptions::to_json() const {
  return {{"arch", "mlp"},
          {"dim", dim},
          {"width", width},
          {"depth", depth},
          {"time_embedding_size", time_embedding_size},
          {"conditioning", conditioning == MlpConditioning::film ? "film" : "add"}};
}

ResidualMLPOptions ResidualMLPOptions::from_json(const nlohmann::json& config) {
  ConfigReader reader(config, "mlp config");
  reader.choice("arch", "", {"mlp"});
  ResidualMLPOptions o;
  o.dim = reader.integer("dim", o.dim);
  o.width = reader.integer("width", o.width);
  o.depth = reader.integer("depth", o.depth, 0);
  o.time_embedding_size = reader.integer("time_embedding_size", o.time_embedding_size, 4);
  o.conditioning = reader.choice("conditioning", "add", {"add", "film"}) == "film"
                       ? MlpConditioning::film
                       : MlpConditioning::add;
  reader.finish();
  return o;
}

ResidualMLPBlock::ResidualMLPBlock(int64_t width, MlpConditioning conditioning, Rng& rng)
    : Module("ResidualMLPBlock") {
  fc1_ = register_module("fc1", std::make_shared<Linear>(width, width, rng));
  fc2_ = register_module("fc2", std::make_shared<Linear>(width, width, rng));
  if (conditioning == MlpConditioning::film)
    film_ = register_module("film", std::make_shared<FiLM>(width, width, rng));
}

Variable ResidualMLPBlock::forward(const Variable& h, const Variable& te) {
  Variable hidden =
      film_ ? film_->forward(fc1_->forward(silu(h)), te) : fc1_->forward(silu(h + te));
  return trace_output(*this, h + fc2_->forward(silu(hidden)));
}

double ResidualMLPBlock::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  using lipschitz::kSiluLipschitz;
  // Adding te does not change the slope in h; FiLM scales by its factor at this t.
  const double film = film_ ? film_->lipschitz_bound(norms) : 1.0;
  const double branch = kSiluLipschitz * fc2_->lipschitz_bound(norms) * film * kSiluLipschitz *
                        fc1_->lipschitz_bound(norms);
  return lipschitz::residual_bound(branch, 1.0);
}

ResidualMLP::ResidualMLP(const ResidualMLPOptions& options, Rng& rng)
    : NoiseModel("ResidualMLP"), options_(options) {
  const ResidualMLPOptions& o = options;
  if (o.depth < 0)
    throw std::invalid_argument("ResidualMLP: depth must be >= 0, got " + std::to_string(o.depth));
  time_embedding_ = register_module(
      "time_embedding", std::make_shared<SinusoidalTimeEmbedding>(o.time_embedding_size));
  time_mlp_ = register_module(
      "time_mlp", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
                      std::make_shared<Linear>(o.time_embedding_size, o.width, rng),
                      std::make_shared<SiLU>(), std::make_shared<Linear>(o.width, o.width, rng)}));
  in_proj_ = register_module("in_proj", std::make_shared<Linear>(o.dim, o.width, rng));
  blocks_ = register_module("blocks", std::make_shared<ModuleList<ResidualMLPBlock>>());
  for (int64_t i = 0; i < o.depth; ++i)
    blocks_->push_back(std::make_shared<ResidualMLPBlock>(o.width, o.conditioning, rng));
  out_proj_ = register_module("out_proj", std::make_shared<Linear>(o.width, o.dim, rng));
}

Variable ResidualMLP::embed_time(const std::vector<int64_t>& t) {
  return time_mlp_->forward(time_embedding_->forward(t));
}

Variable ResidualMLP::forward(const Variable& x, const std::vector<int64_t>& t) {
  if (x.ndim() < 2 || x.numel() != x.size(0) * options_.dim)
    throw std::invalid_argument("ResidualMLP: input must be [B, *] with " +
                                std::to_string(options_.dim) + " elements per sample (dim), got " +
                                x.shape().str());
  check_steps(x, t);
  Variable te = embed_time(t);
  Variable h = in_proj_->forward(reshape(x, {x.size(0), options_.dim}));
  for (auto& block : *blocks_) h = block->forward(h, te);
  Variable out = out_proj_->forward(silu(h));
  return trace_output(*this, reshape(out, x.shape()));
}

double ResidualMLP::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  double bound = in_proj_->lipschitz_bound(norms);
  for (const auto& block : *blocks_) bound *= block->lipschitz_bound(norms);
  return bound * lipschitz::kSiluLipschitz * out_proj_->lipschitz_bound(norms);
}

std::string ResidualMLP::lipschitz_bound_note() const {
  return "AutoLip over the ResidualMLP graph (residual: 1 + L_g)";
}

}  // namespace dpm::nn
