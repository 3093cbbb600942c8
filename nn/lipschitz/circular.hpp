#pragma once
// The exact operator norm of a circular (periodic) convolution, a cross-check for the power
// iteration. The engine has no circular padding; this is its only use. With stride 1 and the
// output as large as the input, y[co, i, j] = sum W[co, ci, a, b] x[ci, (i + a - p) mod H,
// (j + b - p) mod W] is block-circulant, so the unitary 2-D DFT block-diagonalises it: frequency
// (f, g) maps channels by the Co x Ci transfer matrix
//   A(f, g) = sum_{a, b} W[:, :, a, b] exp(2 pi i (f a / H + g b / W)),
// and ||T|| = max over the H W frequencies of sigma_max(A(f, g)). The offset p is a cyclic shift
// (unitary), so the norm does not depend on it.
#include <cstdint>

#include "autograd/tensor.hpp"

namespace dpm::lipschitz {

// weight [Co, Ci, K] on a length-`width` input (height must be 1), or [Co, Ci, KH, KW] on
// height x width. Kernels larger than the input wrap around, as the definition says.
// Singular values by LAPACKE_zgesvd, in double. Threads: none (a cross-check at small sizes).
double circular_conv_norm(const Tensor& weight, int64_t height, int64_t width);

}  // namespace dpm::lipschitz
