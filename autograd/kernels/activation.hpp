#pragma once
// Activation kernels on dense arrays. Pointwise ones: out [n] = f(inp [n]), and the backward
// accumulates dinp [n] += dout [n] * f'(inp). Threads: oneTBB over element ranges
// (parallel_map), softmax over independent rows; every output written by one chunk.
#include <cstdint>

namespace dpm {

void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n);

// x * sigmoid(x)
void silu_forward(float* out, const float* inp, int64_t n);
void silu_backward(float* dinp, const float* dout, const float* inp, int64_t n);

// Exact GELU, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default, not the tanh form).
void gelu_forward(float* out, const float* inp, int64_t n);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n);

// tanh and sigmoid differentiate through their output: out [n] is the forward result.
void tanh_forward(float* out, const float* inp, int64_t n);
void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n);
void sigmoid_forward(float* out, const float* inp, int64_t n);
void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n);

// Softmax along the middle dimension of [outer, dim, inner] (subtracting the maximum first;
// the normaliser is summed in double).
void softmax_forward(float* out, const float* inp, int64_t outer, int64_t dim, int64_t inner);
// dinp += out * (dout - sum_d dout * out), with out the forward result, same layout.
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t dim,
                      int64_t inner);

}  // namespace dpm
