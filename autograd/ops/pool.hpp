#pragma once
// Average pooling (kernel = stride = factor, no padding, trailing remainder dropped as in
// PyTorch) and nearest-neighbour upsampling by an integer factor.
#include "autograd/variable.hpp"

namespace dpm {

Variable avg_pool1d(const Variable& x, int factor = 2);          // [B, C, L] -> [B, C, L/f]
Variable avg_pool2d(const Variable& x, int factor = 2);          // [B, C, H, W] -> [B, C, H/f, W/f]
Variable upsample_nearest1d(const Variable& x, int factor = 2);  // [B, C, L] -> [B, C, L*f]
Variable upsample_nearest2d(const Variable& x, int factor = 2);  // [B, C, H, W] -> [.., H*f, W*f]

}  // namespace dpm
