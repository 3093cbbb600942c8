#include "nn/groupnorm.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/norm.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

GroupNorm::GroupNorm(int groups, int64_t num_channels, float eps)
    : Layer("GroupNorm"), groups_(groups), eps_(eps) {
  if (groups <= 0 || num_channels <= 0 || num_channels % groups != 0)
    throw std::invalid_argument("GroupNorm: num_channels (" + std::to_string(num_channels) +
                                ") must be a positive multiple of groups (" +
                                std::to_string(groups) + ")");
  weight_ = register_parameter("weight", Tensor::ones({num_channels}), /*weight_decay=*/false);
  bias_ = register_parameter("bias", Tensor::zeros({num_channels}), /*weight_decay=*/false);
}

Variable GroupNorm::forward(const Variable& x) {
  return trace_output(*this, group_norm(x, groups_, weight_, bias_, eps_));
}

double GroupNorm::lipschitz_bound(const lipschitz::LayerNorms&) const {
  throw lipschitz::Unbounded(*this,
                             "divides by each sample's own spread: no global Lipschitz bound");
}

}  // namespace dpm::nn
