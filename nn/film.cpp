#include "nn/film.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "autograd/ops/shape.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

FiLM::FiLM(int64_t time_dim, int64_t channels, Rng& rng)
    : Module("FiLM"),
      channels_(channels),
      proj_(register_module("proj", std::make_shared<Linear>(time_dim, 2 * channels, rng))) {}

Variable FiLM::forward(const Variable& h, const Variable& temb) {
  if (h.ndim() < 2 || h.size(1) != channels_ || temb.ndim() != 2 || temb.size(0) != h.size(0))
    throw std::invalid_argument("FiLM: expected h [B, " + std::to_string(channels_) +
                                ", *] and temb [B, time_dim], got h " + h.shape().str() +
                                " and temb " + temb.shape().str());
  std::vector<Variable> scale_shift = chunk(proj_->forward(silu(temb)), 2, 1);
  // [B, C] -> [B, C, 1, ...] so the per-sample, per-channel values broadcast over space.
  std::vector<int64_t> broadcast_shape = h.shape().vec();
  for (size_t d = 2; d < broadcast_shape.size(); ++d) broadcast_shape[d] = 1;
  Variable scale = reshape(scale_shift[0], Shape(broadcast_shape));
  Variable shift = reshape(scale_shift[1], Shape(broadcast_shape));
  return trace_output(*this, h * (scale + 1.0f) + shift);
}

double FiLM::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  return norms.film(*this);
}

}  // namespace dpm::nn
