#include "nn/linear.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/linalg.hpp"
#include "nn/init.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Rng& rng, bool bias)
    : Layer("Linear"), in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0)
    throw std::invalid_argument("Linear: features must be positive, got in " +
                                std::to_string(in_features) + ", out " +
                                std::to_string(out_features));
  weight_ = register_parameter("weight",
                               default_uniform_init({out_features, in_features}, in_features, rng));
  if (bias)
    bias_ = register_parameter("bias", default_uniform_init({out_features}, in_features, rng),
                               /*weight_decay=*/false);
}

Variable Linear::forward(const Variable& x) {
  return trace_output(*this, linear(x, weight_, bias_));
}

double Linear::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  return norms.operator_norm(*this);
}

}  // namespace dpm::nn
