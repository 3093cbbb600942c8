#pragma once
// Normalisation layers' functional forms. x is [B, C, *] (any number of trailing dims).
#include "autograd/variable.hpp"

namespace dpm {

// training: normalise with the batch statistics (biased variance) and, when the running
// tensors are defined, update them in place: r <- (1 - momentum) r + momentum * stat, with the
// unbiased batch variance (PyTorch's semantics). Eval: normalise with the running statistics.
// weight/bias [C] may be undefined (no affine).
Variable batch_norm(const Variable& x, Tensor running_mean, Tensor running_var,
                    const Variable& weight, const Variable& bias, bool training,
                    float momentum = 0.1f, float eps = 1e-5f);

// Normalises over (C/groups, *) per sample and group, then applies per-channel weight/bias.
Variable group_norm(const Variable& x, int groups, const Variable& weight, const Variable& bias,
                    float eps = 1e-5f);

}  // namespace dpm
