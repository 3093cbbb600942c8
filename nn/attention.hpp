#pragma once
// SelfAttention: single-head self-attention over the spatial positions of [B, C, *], with a
// pre-norm and a residual connection: out = x + proj(softmax(q k^T / sqrt(C)) v), where
// (q, k, v) = qkv(norm(x)) per position. The U-Net places it at its lowest resolution.
#include <memory>

#include "autograd/rng.hpp"
#include "nn/linear.hpp"
#include "nn/norm_choice.hpp"

namespace dpm::nn {

class SelfAttention : public Layer {
 public:
  SelfAttention(int64_t channels, const NormOptions& norm, Rng& rng);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;  // none: throws

 private:
  int64_t channels_;
  std::shared_ptr<Layer> norm_;
  std::shared_ptr<Linear> qkv_;   // C -> 3C
  std::shared_ptr<Linear> proj_;  // C -> C
};

}  // namespace dpm::nn
