#pragma once
// PyTorch's default initialisation of Linear and Conv layers: kaiming_uniform_ with a = sqrt(5)
// on the weight gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias draws from the same range.
// Drawn from our Rng, so a seed fixes every initial value bitwise.
#include <cstdint>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"

namespace dpm::nn {

// fan_in = input features (Linear) or in_channels * kernel elements (Conv).
Tensor default_uniform_init(const Shape& shape, int64_t fan_in, Rng& rng);

}  // namespace dpm::nn
