#pragma once
// Linear: y = x W^T + b over the last dimension; W [out, in] (PyTorch's layout), b [out].
#include "autograd/rng.hpp"
#include "nn/layer.hpp"

namespace dpm::nn {

class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, Rng& rng, bool bias = true);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;  // its operator norm

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  Variable weight() const { return weight_; }
  Variable bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_features_, out_features_;
  Variable weight_, bias_;
};

}  // namespace dpm::nn
