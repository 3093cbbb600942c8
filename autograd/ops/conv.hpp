#pragma once
// Convolutions (cross-correlation, PyTorch's convention) through im2col + sgemm.
// 1-D convs are 2-D convs with height 1. Layouts: x [B, Ci, L] or [B, Ci, H, W];
// weight [Co, Ci, K] or [Co, Ci, KH, KW]; bias [Co] or undefined.
#include "autograd/kernels/conv.hpp"
#include "autograd/variable.hpp"

namespace dpm {

Variable conv1d(const Variable& x, const Variable& weight, const Variable& bias = {},
                int stride = 1, int padding = 0, PaddingMode mode = PaddingMode::zeros);
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias = {},
                int stride = 1, int padding = 0, PaddingMode mode = PaddingMode::zeros);

// The adjoint of the (bias-free) conv as a linear map: y [B, Co, Lout] -> [B, Ci, input_length],
// i.e. the transposed convolution / backward-data kernel. <conv(x), y> = <x, adjoint(y)>.
Tensor conv1d_adjoint(const Tensor& y, const Tensor& weight, int64_t input_length, int stride = 1,
                      int padding = 0, PaddingMode mode = PaddingMode::zeros);
Tensor conv2d_adjoint(const Tensor& y, const Tensor& weight, int64_t input_height,
                      int64_t input_width, int stride = 1, int padding = 0,
                      PaddingMode mode = PaddingMode::zeros);

}  // namespace dpm
