#include "autograd/kernels/activation.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "autograd/kernels/elementwise.hpp"

namespace dpm {
namespace {

// e^a for a <= 0, branch-free so that the loops calling it vectorise (std::exp is a scalar libm
// call, which made SiLU a fifth of a U-Net training step): Cephes' expf, Cody-Waite reduction to
// |r| <= ln2 / 2 and a degree-6 polynomial, within 2 ulp of exp; 0 where exp is below the
// smallest normal float.
inline float exp_nonpositive(float a) {
  constexpr float kLowest = -87.0f;
  const float clamped = std::max(a, kLowest);
  // n = round(clamped / ln2) by the 1.5 * 2^23 trick (exact for |x| < 2^22); std::floor would
  // keep the loop scalar.
  constexpr float kRound = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float two_to_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return a < kLowest ? 0.0f : p * two_to_n;
}

// exp of a non-positive argument only, so nothing overflows.
inline float sigmoid_of(float x) {
  const float e = exp_nonpositive(-std::fabs(x));
  const float positive = 1.0f / (1.0f + e);
  return x >= 0.0f ? positive : e * positive;
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
