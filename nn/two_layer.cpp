#include "nn/two_layer.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/ops/shape.hpp"
#include "nn/config_reader.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

nlohmann::json TwoLayerOptions::to_json() const {
  return {{"arch", "two_layer"},
          {"dim", dim},
          {"width", width},
          {"activation", activation == TwoLayerActivation::silu ? "silu" : "relu"},
          {"time_features", time_features},
          {"steps", steps},
          {"init", init == TwoLayerInit::symmetric ? "symmetric" : "gaussian"}};
}

TwoLayerOptions TwoLayerOptions::from_json(const nlohmann::json& config) {
  ConfigReader reader(config, "two_layer config");
  reader.choice("arch", "", {"two_layer"});
  TwoLayerOptions o;
  o.dim = reader.integer("dim", o.dim);
  o.width = reader.integer("width", o.width);
  o.activation = reader.choice("activation", "relu", {"relu", "silu"}) == "silu"
                     ? TwoLayerActivation::silu
                     : TwoLayerActivation::relu;
  o.time_features = reader.integer("time_features", o.time_features, 0);
  o.steps = reader.integer("steps", o.steps);
  o.init = reader.choice("init", "gaussian", {"gaussian", "symmetric"}) == "symmetric"
               ? TwoLayerInit::symmetric
               : TwoLayerInit::gaussian;
  reader.finish();
  return o;
}

namespace {

void fill_standard_normal(const Variable& parameter, Rng& rng) {
  Tensor data = parameter.data();
  rng.fill_normal(data.data(), data.numel());
}

}  // namespace

TwoLayerNet::TwoLayerNet(const TwoLayerOptions& options, Rng& rng)
    : NoiseModel("TwoLayerNet"), options_(options) {
  if (options.dim < 1 || options.width < 1 || options.time_features < 0 || options.steps < 1)
    throw std::invalid_argument("TwoLayerNet: need dim, width, steps >= 1 and time_features >= 0");
  hidden_ = register_module("hidden",
                            std::make_shared<Linear>(options.input_size(), options.width, rng));
  output_ = register_module("output",
                            std::make_shared<Linear>(options.width, options.dim, rng, false));
  for (const Variable& parameter : {hidden_->weight(), hidden_->bias(), output_->weight()})
    fill_standard_normal(parameter, rng);
  if (options.init == TwoLayerInit::symmetric) {
    if (options.width % 2 != 0)
      throw std::invalid_argument("TwoLayerNet: the symmetric initialisation needs an even width, "
                                  "got " + std::to_string(options.width));
    const int64_t half = options.width / 2, d = options.input_size();
    float* w = hidden_->weight().data().data();
    float* b = hidden_->bias().data().data();
    float* a = output_->weight().data().data();
    std::copy_n(w, half * d, w + half * d);
    std::copy_n(b, half, b + half);
    for (int64_t i = 0; i < options.dim; ++i)
      for (int64_t r = 0; r < half; ++r) a[i * options.width + half + r] = -a[i * options.width + r];
  }
}

Tensor TwoLayerNet::time_features(const std::vector<int64_t>& t) const {
  const int64_t features = options_.time_features;
  Tensor out = Tensor::empty({static_cast<int64_t>(t.size()), features});
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] < 0 || t[i] >= options_.steps)
      throw std::invalid_argument("TwoLayerNet: step index " + std::to_string(t[i]) +
                                  " outside 0.." + std::to_string(options_.steps - 1));
    const double s = static_cast<double>(t[i] + 1) / static_cast<double>(options_.steps);
    for (int64_t k = 0; k < features; ++k)
      out.data()[static_cast<int64_t>(i) * features + k] =
          static_cast<float>(std::cos(std::numbers::pi * static_cast<double>(k + 1) * s));
  }
  return out;
}

Tensor TwoLayerNet::inputs(const Tensor& x, const std::vector<int64_t>& t) const {
  const int64_t batch = x.ndim() >= 1 ? x.shape()[0] : 0;
  if (x.ndim() < 2 || x.numel() != batch * options_.dim)
    throw std::invalid_argument("TwoLayerNet: input must be [B, *] with " +
                                std::to_string(options_.dim) +
                                " elements per sample (dim), got " + x.shape().str());
  if (static_cast<int64_t>(t.size()) != batch)
    throw std::invalid_argument("TwoLayerNet: need one step index per sample, got " +
                                std::to_string(t.size()) + " for " + std::to_string(batch));
  const Tensor rows = x.contiguous();
  const Tensor features = time_features(t);
  const int64_t n = options_.dim, e = options_.time_features, d = options_.input_size();
  Tensor z = Tensor::empty({batch, d});
  for (int64_t i = 0; i < batch; ++i) {
    std::copy_n(rows.data() + i * n, n, z.data() + i * d);
    std::copy_n(features.data() + i * e, e, z.data() + i * d + n);
  }
  return z;
}

Variable TwoLayerNet::forward(const Variable& x, const std::vector<int64_t>& t) {
  check_steps(x, t);
  const Variable z(inputs(x.data(), t));
  const Variable hidden = hidden_->forward(z);
  const Variable activated =
      options_.activation == TwoLayerActivation::silu ? silu(hidden) : relu(hidden);
  const Variable out = mul_scalar(output_->forward(activated),
                                  static_cast<float>(1.0 / std::sqrt(options_.width)));
  return trace_output(*this, reshape(out, x.shape()));
}

double TwoLayerNet::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  const double activation =
      options_.activation == TwoLayerActivation::silu ? lipschitz::kSiluLipschitz : 1.0;
  return output_->lipschitz_bound(norms) * activation * hidden_->lipschitz_bound(norms) /
         std::sqrt(static_cast<double>(options_.width));
}

std::string TwoLayerNet::lipschitz_bound_note() const {
  return "||A|| Lip(sigma) ||W|| / sqrt(m) (W with its time columns)";
}

}  // namespace dpm::nn
