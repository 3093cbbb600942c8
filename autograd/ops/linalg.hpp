#pragma once
// Matrix products through cblas_sgemm.
#include "autograd/variable.hpp"

namespace dpm {

Variable matmul(const Variable& a, const Variable& b);  // [M, K] x [K, N] -> [M, N]
Variable bmm(const Variable& a, const Variable& b);     // [B, M, K] x [B, K, N] -> [B, M, N]
// y = x W^T + b with x [..., in], W [out, in] (PyTorch's layout), b [out] or undefined.
Variable linear(const Variable& x, const Variable& weight, const Variable& bias = {});

}  // namespace dpm
