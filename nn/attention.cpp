#include "nn/attention.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/ops/linalg.hpp"
#include "autograd/ops/shape.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

SelfAttention::SelfAttention(int64_t channels, const NormOptions& norm, Rng& rng)
    : Layer("SelfAttention"), channels_(channels) {
  norm_ = register_module("norm", make_norm(norm, channels));
  qkv_ = register_module("qkv", std::make_shared<Linear>(channels, 3 * channels, rng));
  proj_ = register_module("proj", std::make_shared<Linear>(channels, channels, rng));
}

Variable SelfAttention::forward(const Variable& x) {
  if (x.ndim() < 3 || x.size(1) != channels_)
    throw std::invalid_argument("SelfAttention: input must be [B, " + std::to_string(channels_) +
                                ", *] with at least one spatial dim, got " + x.shape().str());
  const int64_t batch = x.size(0);
  const int64_t positions = x.numel() / (batch * channels_);
  // [B, C, *] -> tokens [B, S, C]
  Variable tokens = transpose(reshape(norm_->forward(x), {batch, channels_, positions}), 1, 2);
  std::vector<Variable> qkv = chunk(qkv_->forward(tokens), 3, 2);
  float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(channels_)));
  Variable attention = softmax(bmm(qkv[0], transpose(qkv[1], 1, 2)) * scale, 2);  // [B, S, S]
  Variable mixed = proj_->forward(bmm(attention, qkv[2]));                        // [B, S, C]
  return trace_output(*this, x + reshape(transpose(mixed, 1, 2), x.shape()));
}

double SelfAttention::lipschitz_bound(const lipschitz::LayerNorms&) const {
  throw lipschitz::Unbounded(*this, "computes dot-product attention: not globally Lipschitz");
}

}  // namespace dpm::nn
