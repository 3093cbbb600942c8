#pragma once
// TwoLayerNet: the two-layer network of the analysis of score estimation by gradient descent
// (docs/score-study.md):
//   f(x, t) = (1 / sqrt(m)) A sigma(W z + b),   z = [x; e(t)],
// width m, sigma ReLU or SiLU, W [m, N + E], b [m], A [N, m], all drawn standard normal (the NTK
// initialisation: with the 1 / sqrt(m) output scale the network's tangent kernel converges as m
// grows, and GD moves each weight by O(1 / sqrt(m))). Like every NoiseModel it predicts the noise
// eps; its score estimate is s(x, t) = -f(x, t) / sqrt(1 - abar_t).
// Time enters as E fixed cosine features of the diffusion time, e_k(t) = cos(pi k (i + 1) / T) for
// the 0-based step index i and k = 1..E: smooth in t (a sinusoidal embedding's high frequencies
// would be noise to a two-layer net) and without parameters, so theta = (W, b, A) is all there is.
// Parameter names: hidden.weight (W), hidden.bias (b), output.weight (A).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/linear.hpp"
#include "nn/noise_model.hpp"

namespace dpm::nn {

enum class TwoLayerActivation { relu, silu };
// gaussian: W, b, A all standard normal, so f(theta_0) is a random function of variance about
// ||z||^2 / 2 per output. symmetric: the second half of the units copies the first half's W and b
// with A negated, so f(theta_0) = 0 (up to rounding) while the tangent kernel keeps its law (the usual
// device of NTK analyses for starting GD from the zero function); needs an even width.
enum class TwoLayerInit { gaussian, symmetric };

struct TwoLayerOptions {
  int64_t dim = 2;  // N
  int64_t width = 1024;  // m
  TwoLayerActivation activation = TwoLayerActivation::relu;
  int64_t time_features = 4;  // E
  int64_t steps = 300;        // T of the schedule the features are spread over
  TwoLayerInit init = TwoLayerInit::gaussian;

  int64_t input_size() const { return dim + time_features; }  // N + E
  nlohmann::json to_json() const;  // {"arch": "two_layer", ...}
  static TwoLayerOptions from_json(const nlohmann::json& config);
};

class TwoLayerNet : public NoiseModel {
 public:
  TwoLayerNet(const TwoLayerOptions& options, Rng& rng);
  // x [B, *] with N elements per sample; the output has x's shape.
  Variable forward(const Variable& x, const std::vector<int64_t>& t) override;
  nlohmann::json config() const override { return options_.to_json(); }
  const TwoLayerOptions& options() const { return options_; }

  // The network's input z = [x; e(t)] for rows x [B, N] (float or any [B, *] of N per sample):
  // [B, N + E].
  Tensor inputs(const Tensor& x, const std::vector<int64_t>& t) const;
  // e(t) for 0-based step indices: [B, E].
  Tensor time_features(const std::vector<int64_t>& t) const;

  const Linear& hidden() const { return *hidden_; }  // W, b
  const Linear& output() const { return *output_; }  // A
  // In x at fixed t: ||A|| ||W|| Lip(sigma) / sqrt(m) (W's time columns included: an upper
  // bound).
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;
  std::string lipschitz_bound_note() const override;

 private:
  TwoLayerOptions options_;
  std::shared_ptr<Linear> hidden_, output_;
};

}  // namespace dpm::nn
