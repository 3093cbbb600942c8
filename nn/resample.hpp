#pragma once
// Resolution changes without parameters: AvgPool (kernel = stride = factor) and nearest
// Upsample by an integer factor. Both act on [B, C, L] (1-D) or [B, C, H, W] (2-D), chosen by
// the input's rank, so the 1d/2d names are aliases; their Lipschitz constants depend on it, so
// lipschitz_bound reads the rank of the last forward's input (run the layer once first).
#include "nn/layer.hpp"

namespace dpm::nn {

class AvgPool : public Layer {
 public:
  explicit AvgPool(int factor = 2);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

 private:
  int factor_;
  int last_spatial_dims_ = 0;  // 0 before the first forward
};

class Upsample : public Layer {
 public:
  explicit Upsample(int factor = 2);  // nearest
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;

 private:
  int factor_;
  int last_spatial_dims_ = 0;  // 0 before the first forward
};

using AvgPool1d = AvgPool;
using AvgPool2d = AvgPool;

}  // namespace dpm::nn
