#pragma once
// GroupNorm over [B, C, *]: statistics per sample and group of C / groups channels, then a
// per-channel affine weight (1) and bias (0), both without weight decay. Same in train and eval.
#include "nn/layer.hpp"

namespace dpm::nn {

class GroupNorm : public Layer {
 public:
  GroupNorm(int groups, int64_t num_channels, float eps = 1e-5f);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;  // none: throws

  int groups() const { return groups_; }
  Variable weight() const { return weight_; }
  Variable bias() const { return bias_; }

 private:
  int groups_;
  float eps_;
  Variable weight_, bias_;
};

}  // namespace dpm::nn
