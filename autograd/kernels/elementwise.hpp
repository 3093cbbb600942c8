#pragma once
// Pointwise kernels on dense arrays of n floats, and the parallel loop they share.
// Threads: oneTBB through parallel_for over element ranges (each element written by one chunk).
#include <cstdint>

#include "autograd/threading.hpp"

namespace dpm {

// Elements per parallel chunk for memory-bound pointwise loops: large enough that the task
// overhead is negligible, small enough to spread a [B, C, L] activation over all cores.
inline constexpr int64_t kElementwiseGrain = int64_t{1} << 14;

// Calls f(i) for i in [0, n), split over threads in chunks of about kElementwiseGrain.
// f is inlined into the chunk loop so simple bodies vectorise.
template <typename F>
void parallel_map(int64_t n, F&& f) {
  parallel_for(n, kElementwiseGrain, [&f](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f(i);
  });
}

enum class UnaryOp { add_scalar, mul_scalar, neg, exp, log, sqrt, square, pow };

// out [n] = op(inp [n]); `param` is the scalar of add_scalar / mul_scalar and the exponent of pow.
void unary_forward(UnaryOp op, float* out, const float* inp, int64_t n, float param = 0.0f);

// Accumulates dinp [n] += dout [n] * op'(inp); out [n] is the forward result (exp and sqrt reuse
// it).
void unary_backward(UnaryOp op, float* dinp, const float* dout, const float* inp, const float* out,
                    int64_t n, float param = 0.0f);

}  // namespace dpm
