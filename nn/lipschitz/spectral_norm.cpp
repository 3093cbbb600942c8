#include "nn/lipschitz/spectral_norm.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/arith.hpp"
#include "autograd/ops/conv.hpp"
#include "autograd/ops/linalg.hpp"
#include "autograd/ops/reduce.hpp"
#include "autograd/ops/shape.hpp"
#include "autograd/rng.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::lipschitz {
namespace {

// [1, ...shape]: one sample as a batch.
Shape with_batch(const Shape& shape) {
  std::vector<int64_t> dims{1};
  for (int64_t d : shape.vec()) dims.push_back(d);
  return Shape(dims);
}

Variable conv_op(const Variable& x, const Variable& weight, const Variable& bias,
                 const ConvGeometry& g) {
  const int stride = static_cast<int>(g.stride_w), padding = static_cast<int>(g.pad_w);
  return weight.ndim() == 3 ? conv1d(x, weight, bias, stride, padding, g.padding)
                            : conv2d(x, weight, bias, stride, padding, g.padding);
}

}  // namespace

Variable dense_sigma(const Variable& weight, const Tensor& u, const Tensor& v) {
  const int64_t m = weight.size(0), n = weight.numel() / m;
  if (u.numel() != m || v.numel() != n)
    throw std::invalid_argument("dense_sigma: weight " + weight.shape().str() + " needs u [" +
                                std::to_string(m) + "] and v [" + std::to_string(n) + "], got " +
                                u.shape().str() + " and " + v.shape().str());
  Variable u_row(u.contiguous().view({1, m})), v_column(v.contiguous().view({n, 1}));
  return reshape(matmul(matmul(u_row, reshape(weight, {m, n})), v_column), Shape{});
}

Variable conv_sigma(const Variable& weight, const Tensor& u, const Tensor& v,
                    const ConvGeometry& geometry) {
  const ConvMap map(weight.data(), geometry);  // validates the shapes
  if (u.shape() != map.output_shape() || v.shape() != map.input_shape())
    throw std::invalid_argument("conv_sigma: need u " + map.output_shape().str() + " and v " +
                                map.input_shape().str() + ", got " + u.shape().str() + " and " +
                                v.shape().str());
  Variable y = conv_op(Variable(v.contiguous().view(with_batch(v.shape()))), weight, {}, geometry);
  return sum(y * Variable(u.contiguous().view(with_batch(u.shape()))));
}

Variable spectral_rescale(const Variable& weight, const Variable& sigma, double target) {
  if (!(target > 0))
    throw std::invalid_argument("spectral_rescale: target must be positive, got " +
                                std::to_string(target));
  if (sigma.item() <= target) return weight;
  return weight * (static_cast<float>(target) / sigma);
}

SpectralNormalized::SpectralNormalized(std::shared_ptr<nn::Linear> linear,
                                       const SpectralNormOptions& options)
    : Layer("SpectralNormalized"), options_(options) {
  if (!linear) throw std::invalid_argument("SpectralNormalized: null Linear");
  linear_ = register_module("layer", std::move(linear));
  Rng rng(options.seed);
  u_ = register_buffer("weight_u", Tensor::zeros({linear_->out_features()}));
  v_ = register_buffer("weight_v", randn({linear_->in_features()}, rng));
  converge();
}

SpectralNormalized::SpectralNormalized(std::shared_ptr<nn::Conv> conv, const Shape& input_shape,
                                       const SpectralNormOptions& options)
    : Layer("SpectralNormalized"), options_(options) {
  if (!conv) throw std::invalid_argument("SpectralNormalized: null Conv");
  geometry_ = conv_geometry(*conv, input_shape);
  conv_ = register_module("layer", std::move(conv));
  const ConvMap map(conv_->weight().data(), geometry_);
  Rng rng(options.seed);
  u_ = register_buffer("weight_u", Tensor::zeros(map.output_shape()));
  v_ = register_buffer("weight_v", randn(map.input_shape(), rng));
  converge();
}

std::unique_ptr<LayerOperator> SpectralNormalized::raw_map(const Tensor& weight) const {
  if (conv_) return std::make_unique<ConvMap>(weight, geometry_);
  return std::make_unique<DenseMap>(weight);
}

void SpectralNormalized::iterate(const PowerIterationOptions& options) {
  const Tensor weight = (conv_ ? conv_->weight() : linear_->weight()).data();
  power_iterate(*raw_map(weight), u_, v_, options);
}

void SpectralNormalized::advance(int steps) {
  iterate({.steps = steps});
}

void SpectralNormalized::converge() {
  iterate({.steps = 1, .tolerance = 1e-6, .max_steps = 1000});
}

std::pair<Variable, Variable> SpectralNormalized::sigma_and_weight() const {
  const Variable weight = conv_ ? conv_->weight() : linear_->weight();
  Variable sigma = conv_ ? conv_sigma(weight, u_, v_, geometry_) : dense_sigma(weight, u_, v_);
  return {sigma, spectral_rescale(weight, sigma, options_.target)};
}

std::unique_ptr<LayerOperator> SpectralNormalized::rescaled_map() const {
  NoGradGuard no_grad;
  return raw_map(sigma_and_weight().second.data());
}

Variable SpectralNormalized::forward(const Variable& x) {
  if (is_training()) {
    NoGradGuard no_grad;
    advance(options_.power_steps);
  }
  const Variable weight = sigma_and_weight().second;
  if (linear_) return trace_output(*this, linear(x, weight, linear_->bias()));
  const Shape expected = ConvMap(weight.data(), geometry_).input_shape();
  for (int d = 1; d < expected.ndim(); ++d)
    if (x.ndim() != expected.ndim() + 1 || x.size(d + 1) != expected[d])
      throw std::invalid_argument("SpectralNormalized: the conv is normalised at input size " +
                                  with_batch(expected).str() + " (any batch), got " +
                                  x.shape().str());
  return trace_output(*this, conv_op(x, weight, conv_->bias(), geometry_));
}

double SpectralNormalized::lipschitz_bound(const LayerNorms& norms) const {
  return norms.operator_norm(*this);
}

}  // namespace dpm::lipschitz
