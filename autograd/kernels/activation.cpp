#include "autograd/kernels/activation.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/kernels/elementwise.hpp"

namespace dpm {
namespace {

// exp of a non-positive argument only, so neither branch overflows.
inline float sigmoid_of(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  float e = std::exp(x);
  return e / (1.0f + e);
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

}  // namespace

void relu_forward(float* out, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) { out[i] = inp[i] > 0.0f ? inp[i] : 0.0f; });
}
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) { dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f; });
}

void silu_forward(float* out, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) { out[i] = inp[i] * sigmoid_of(inp[i]); });
}
void silu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) {
    float x = inp[i], s = sigmoid_of(x);
    dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
  });
}

void gelu_forward(float* out, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + std::erf(x * kInvSqrt2));
  });
}
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  // d/dx x Phi(x) = Phi(x) + x phi(x)
  parallel_map(n, [&](int64_t i) {
    float x = inp[i];
    float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
    float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  });
}

void tanh_forward(float* out, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) { out[i] = std::tanh(inp[i]); });
}
void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_map(n, [&](int64_t i) { dinp[i] += dout[i] * (1.0f - out[i] * out[i]); });
}

void sigmoid_forward(float* out, const float* inp, int64_t n) {
  parallel_map(n, [&](int64_t i) { out[i] = sigmoid_of(inp[i]); });
}
void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_map(n, [&](int64_t i) { dinp[i] += dout[i] * out[i] * (1.0f - out[i]); });
}

// Threads: oneTBB over the outer * inner independent lines (each line written by one chunk).
void softmax_forward(float* out, const float* inp, int64_t outer, int64_t dim, int64_t inner) {
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, dim));
  parallel_for(outer * inner, grain, [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      int64_t base = (line / inner) * dim * inner + line % inner;
      const float* x = inp + base;
      float* y = out + base;
      float max = -INFINITY;
      for (int64_t d = 0; d < dim; ++d) max = std::max(max, x[d * inner]);
      double total = 0;
      for (int64_t d = 0; d < dim; ++d) {
        y[d * inner] = std::exp(x[d * inner] - max);
        total += y[d * inner];
      }
      float inv = static_cast<float>(1.0 / total);
      for (int64_t d = 0; d < dim; ++d) y[d * inner] *= inv;
    }
  });
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t dim,
                      int64_t inner) {
  int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, dim));
  parallel_for(outer * inner, grain, [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      int64_t base = (line / inner) * dim * inner + line % inner;
      const float* g = dout + base;
      const float* y = out + base;
      float* dx = dinp + base;
      double dot = 0;
      for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(g[d * inner]) * y[d * inner];
      float fdot = static_cast<float>(dot);
      for (int64_t d = 0; d < dim; ++d) dx[d * inner] += y[d * inner] * (g[d * inner] - fdot);
    }
  });
}

}  // namespace dpm
