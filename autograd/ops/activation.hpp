#pragma once
// Pointwise activations and softmax.
#include "autograd/variable.hpp"

namespace dpm {

Variable relu(const Variable& a);
Variable silu(const Variable& a);     // x * sigmoid(x)
Variable gelu(const Variable& a);     // exact: x * Phi(x), PyTorch's default
Variable tanh(const Variable& a);
Variable sigmoid(const Variable& a);
Variable softmax(const Variable& a, int dim);

}  // namespace dpm
