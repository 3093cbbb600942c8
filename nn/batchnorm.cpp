#include "nn/batchnorm.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/norm.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

BatchNorm::BatchNorm(int64_t num_features, float eps, float momentum)
    : Layer("BatchNorm"), num_features_(num_features), eps_(eps), momentum_(momentum) {
  if (num_features <= 0)
    throw std::invalid_argument("BatchNorm: num_features must be positive, got " +
                                std::to_string(num_features));
  weight_ = register_parameter("weight", Tensor::ones({num_features}), /*weight_decay=*/false);
  bias_ = register_parameter("bias", Tensor::zeros({num_features}), /*weight_decay=*/false);
  running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var_ = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::scalar(0.0f));
}

Variable BatchNorm::forward(const Variable& x) {
  // The reducer only in training: eval normalises with the running statistics, no collective.
  Variable y = batch_norm(x, running_mean_, running_var_, weight_, bias_, is_training(), momentum_,
                          eps_, is_training() ? reduce_ : StatisticsReducer());
  if (is_training()) num_batches_tracked_.data()[0] += 1.0f;
  return trace_output(*this, y);
}

double BatchNorm::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  return norms.batchnorm(*this);
}

}  // namespace dpm::nn
