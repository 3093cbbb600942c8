#pragma once
// ResBlock of the paper's U-Net (docs/protocol.md, The U-Net), for 1-D or 2-D feature maps:
//   h = conv1(SiLU(norm1(x)));  h = FiLM(h, temb);  h = conv2(SiLU(norm2(h)));
//   out = h + bypass(x),  bypass = k=3 conv when in != out channels, else identity.
// Convs are k = 3 with zero 'same' padding; dropout is 0 in the paper and omitted.
#include <memory>

#include "autograd/rng.hpp"
#include "nn/conv.hpp"
#include "nn/film.hpp"
#include "nn/norm_choice.hpp"

namespace dpm::nn {

struct ResBlockOptions {
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  int64_t time_dim = 64;
  int spatial_dims = 1;
  NormOptions norm{};
};

class ResBlock : public Module {
 public:
  ResBlock(const ResBlockOptions& options, Rng& rng);
  // x [B, in, *], temb [B, time_dim] -> [B, out, *]
  Variable forward(const Variable& x, const Variable& temb);
  // In x at fixed temb: the branch's factors, outermost first, plus the bypass's (1: identity).
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

  const ResBlockOptions& options() const { return options_; }
  bool has_bypass_conv() const { return bypass_ != nullptr; }

 private:
  ResBlockOptions options_;
  std::shared_ptr<Layer> norm1_;
  std::shared_ptr<Conv> conv1_;
  std::shared_ptr<FiLM> film_;
  std::shared_ptr<Layer> norm2_;
  std::shared_ptr<Conv> conv2_;
  std::shared_ptr<Conv> bypass_;  // null: identity
};

}  // namespace dpm::nn
