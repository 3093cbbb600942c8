#pragma once
// FiLM: scale-shift conditioning of a feature map on the time embedding (docs/protocol.md, The
// U-Net): (scale, shift) = proj(SiLU(temb)) split in two halves of C, h * (1 + scale) + shift,
// broadcast over the spatial dims. proj is Linear(time_dim -> 2C).
#include <memory>

#include "autograd/rng.hpp"
#include "nn/linear.hpp"

namespace dpm::nn {

class FiLM : public Module {
 public:
  FiLM(int64_t time_dim, int64_t channels, Rng& rng);
  // h [B, C, *], temb [B, time_dim] -> [B, C, *]
  Variable forward(const Variable& h, const Variable& temb);
  // In h at the time step being bounded: max_c |1 + scale_c(t)|, as measured.
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

  int64_t channels() const { return channels_; }

 private:
  int64_t channels_;
  std::shared_ptr<Linear> proj_;
};

}  // namespace dpm::nn
