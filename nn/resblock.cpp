#include "nn/resblock.hpp"

#include "autograd/ops/activation.hpp"
#include "autograd/ops/arith.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

ResBlock::ResBlock(const ResBlockOptions& options, Rng& rng)
    : Module("ResBlock"), options_(options) {
  const int64_t ci = options.in_channels, co = options.out_channels;
  auto conv3 = [&](int64_t in, int64_t out) {
    return make_conv(options.spatial_dims,
                     {.in_channels = in, .out_channels = out, .kernel_size = 3, .padding = 1}, rng);
  };
  // Registration order fixes the parameter order (and the Rng draws): forward order.
  norm1_ = register_module("norm1", make_norm(options.norm, ci));
  conv1_ = register_module("conv1", conv3(ci, co));
  film_ = register_module("film", std::make_shared<FiLM>(options.time_dim, co, rng));
  norm2_ = register_module("norm2", make_norm(options.norm, co));
  conv2_ = register_module("conv2", conv3(co, co));
  if (ci != co) bypass_ = register_module("bypass", conv3(ci, co));
}

Variable ResBlock::forward(const Variable& x, const Variable& temb) {
  Variable h = conv1_->forward(silu(norm1_->forward(x)));
  h = film_->forward(h, temb);
  h = conv2_->forward(silu(norm2_->forward(h)));
  return trace_output(*this, h + (bypass_ ? bypass_->forward(x) : x));
}

double ResBlock::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  using lipschitz::kSiluLipschitz;
  const double branch = conv2_->lipschitz_bound(norms) * kSiluLipschitz *
                        norm2_->lipschitz_bound(norms) * film_->lipschitz_bound(norms) *
                        conv1_->lipschitz_bound(norms) * kSiluLipschitz *
                        norm1_->lipschitz_bound(norms);
  return lipschitz::residual_bound(branch, bypass_ ? bypass_->lipschitz_bound(norms) : 1.0);
}

}  // namespace dpm::nn
