#pragma once
// Conv1d / Conv2d: PyTorch's convolution layers (cross-correlation, square kernels).
// Weight [Co, Ci, K] or [Co, Ci, K, K], bias [Co]. Padding mode zeros or replicate.
#include <memory>

#include "autograd/kernels/conv.hpp"
#include "autograd/rng.hpp"
#include "nn/layer.hpp"

namespace dpm::nn {

struct ConvOptions {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int kernel_size = 3;
  int stride = 1;
  int padding = 0;  // per side; kernel_size / 2 keeps the length ('same') for odd kernels
  PaddingMode padding_mode = PaddingMode::zeros;
  bool bias = true;
};

// The shared implementation; spatial_dims is 1 or 2.
class Conv : public Layer {
 public:
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;  // its operator norm

  const ConvOptions& options() const { return options_; }
  int spatial_dims() const { return spatial_dims_; }
  Variable weight() const { return weight_; }
  Variable bias() const { return bias_; }  // undefined without bias
  // The input shape of the last forward (rank 0 before the first): the size at which the
  // spectral scan measures the layer's operator norm, which depends on it.
  const Shape& last_input_shape() const { return last_input_shape_; }

 protected:
  Conv(const char* type_name, int spatial_dims, const ConvOptions& options, Rng& rng);

 private:
  int spatial_dims_;
  ConvOptions options_;
  Variable weight_, bias_;
  Shape last_input_shape_;
};

class Conv1d : public Conv {
 public:
  Conv1d(const ConvOptions& options, Rng& rng) : Conv("Conv1d", 1, options, rng) {}
};

class Conv2d : public Conv {
 public:
  Conv2d(const ConvOptions& options, Rng& rng) : Conv("Conv2d", 2, options, rng) {}
};

// A conv of the given rank (1 or 2): the one switch between Conv1d and Conv2d for models
// built for either.
std::shared_ptr<Conv> make_conv(int spatial_dims, const ConvOptions& options, Rng& rng);

}  // namespace dpm::nn
