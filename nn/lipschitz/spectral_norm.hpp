#pragma once
// Spectral normalisation as a weight reparametrisation: W_sn = W / max(1, sigma(W) / target)
// (Miyato et al. 2018; with target = 1 it caps rather than fixes the norm). As in PyTorch's
// spectral_norm, the gradient flows through sigma: sigma = u^T A(W) v with the power
// iteration's u, v held constant, so d sigma / dW = u v^T (for a conv, the conv weight gradient
// of input v and output gradient u). That is the derivative of the converged top singular value:
// the vectors' own dependence on W contributes nothing to first order (envelope theorem).
#include <memory>

#include "autograd/kernels/conv.hpp"
#include "autograd/variable.hpp"
#include "nn/conv.hpp"
#include "nn/layer.hpp"
#include "nn/linear.hpp"
#include "nn/lipschitz/operator_norm.hpp"

namespace dpm::lipschitz {

// u^T W v, shape [], differentiable in W [m, n] (higher ranks read as [size(0), rest]);
// u [m], v [n] are constants.
Variable dense_sigma(const Variable& weight, const Tensor& u, const Tensor& v);
// <u, conv(v, W)> for one sample (geometry batch 1, u and v shaped as ConvMap's output and
// input), differentiable in W through the conv op.
Variable conv_sigma(const Variable& weight, const Tensor& u, const Tensor& v,
                    const ConvGeometry& geometry);
// weight / max(1, sigma / target): weight unchanged while sigma <= target.
Variable spectral_rescale(const Variable& weight, const Variable& sigma, double target);

struct SpectralNormOptions {
  double target = 1.0;
  int power_steps = 1;  // power-iteration updates per training forward (PyTorch's default)
  uint64_t seed = 0;    // of the initial v
};

// Wraps a Linear, or a Conv normalised by its operator norm at one input size. The vectors start
// converged for the initial weight; each training forward then advances the power iteration (no
// graph); eval mode uses the vectors as they are, as PyTorch does. The vectors are buffers
// "weight_u" and "weight_v", so checkpoints keep them; the wrapped layer is the child "layer"
// ("layer.weight", "layer.bias"). The spectral scan measures the wrapper as one operator with the
// rescaled weight.
class SpectralNormalized : public nn::Layer {
 public:
  explicit SpectralNormalized(std::shared_ptr<nn::Linear> linear,
                              const SpectralNormOptions& options = {});
  // input_shape: [B, Ci, L] or [B, Ci, H, W] (B is ignored); forward then requires that size.
  SpectralNormalized(std::shared_ptr<nn::Conv> conv, const Shape& input_shape,
                     const SpectralNormOptions& options = {});

  Variable forward(const Variable& x) override;
  // The rescaled operator's norm, as measured.
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;
  // sigma = u^T A(W) v at the current vectors and the rescaled weight, both on the tape.
  std::pair<Variable, Variable> sigma_and_weight() const;
  // The operator with the rescaled weight (no graph): what the layer applies, minus its bias.
  std::unique_ptr<LayerOperator> rescaled_map() const;
  // Power-iteration updates on the raw weight: `steps` of them (training forwards do this), or
  // until sigma settles to 1e-6.
  void advance(int steps);
  void converge();

  const SpectralNormOptions& options() const { return options_; }

 private:
  std::unique_ptr<LayerOperator> raw_map(const Tensor& weight) const;
  void iterate(const PowerIterationOptions& options);

  SpectralNormOptions options_;
  std::shared_ptr<nn::Linear> linear_;
  std::shared_ptr<nn::Conv> conv_;
  ConvGeometry geometry_;  // convs only
  Tensor u_, v_;
};

}  // namespace dpm::lipschitz
