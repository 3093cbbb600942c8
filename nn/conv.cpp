#include "nn/conv.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/conv.hpp"
#include "nn/init.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

Conv::Conv(const char* type_name, int spatial_dims, const ConvOptions& options, Rng& rng)
    : Layer(type_name), spatial_dims_(spatial_dims), options_(options) {
  auto require_positive = [&](int64_t value, const char* what) {
    if (value <= 0)
      throw std::invalid_argument(std::string(type_name) + ": " + what + " must be positive, got " +
                                  std::to_string(value));
  };
  require_positive(options.in_channels, "in_channels");
  require_positive(options.out_channels, "out_channels");
  require_positive(options.kernel_size, "kernel_size");
  require_positive(options.stride, "stride");
  if (options.padding < 0)
    throw std::invalid_argument(std::string(type_name) + ": padding must be >= 0, got " +
                                std::to_string(options.padding));

  int64_t k = options.kernel_size;
  Shape weight_shape = spatial_dims == 1 ? Shape{options.out_channels, options.in_channels, k}
                                         : Shape{options.out_channels, options.in_channels, k, k};
  int64_t fan_in = options.in_channels * (spatial_dims == 1 ? k : k * k);
  weight_ = register_parameter("weight", default_uniform_init(weight_shape, fan_in, rng));
  if (options.bias)
    bias_ = register_parameter("bias", default_uniform_init({options.out_channels}, fan_in, rng),
                               /*weight_decay=*/false);
}

Variable Conv::forward(const Variable& x) {
  const ConvOptions& o = options_;
  last_input_shape_ = x.shape();
  Variable y = spatial_dims_ == 1 ? conv1d(x, weight_, bias_, o.stride, o.padding, o.padding_mode)
                                  : conv2d(x, weight_, bias_, o.stride, o.padding, o.padding_mode);
  return trace_output(*this, y);
}

std::shared_ptr<Conv> make_conv(int spatial_dims, const ConvOptions& options, Rng& rng) {
  if (spatial_dims == 1) return std::make_shared<Conv1d>(options, rng);
  if (spatial_dims == 2) return std::make_shared<Conv2d>(options, rng);
  throw std::invalid_argument("make_conv: spatial_dims must be 1 or 2, got " +
                              std::to_string(spatial_dims));
}

double Conv::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  return norms.operator_norm(*this);
}

}  // namespace dpm::nn
