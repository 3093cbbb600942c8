#pragma once
// Broadcasting kernels on raw pointers: binary arithmetic, sums over broadcast dimensions and
// their adjoint (expanding a reduced tensor back). All tensors are dense row-major; how they
// line up is described by a BroadcastGeometry built from their shapes.
// Threads: oneTBB over one dimension of the written tensor, so every output element is written
// by exactly one chunk; each reduced element is summed in one fixed order.
#include <array>
#include <cstdint>

#include "autograd/shape.hpp"

namespace dpm {

// Iteration over a dense "full" tensor of shape `extent` together with two operands that are
// broadcast against it (stride 0 along their broadcast dimensions). Operand 0 is the full tensor
// itself, operands 1 and 2 are the broadcast ones. Dimensions are collapsed where every operand
// is dense across them, so [B, C, S] * [1, C, 1] keeps three dims but [B, C, S] + [B, C, S] is one.
struct BroadcastGeometry {
  int ndim = 1;
  std::array<int64_t, kMaxDims> extent{};
  std::array<std::array<int64_t, kMaxDims>, 3> stride{};  // [operand][dim], in elements
  int64_t numel() const;
};

// full: the broadcast shape of a and b (callers compute it with broadcast_shapes). Each of a and
// b must broadcast to full; they are aligned from the right as in NumPy.
BroadcastGeometry broadcast_geometry(const Shape& full, const Shape& a, const Shape& b);

enum class BinaryOp { add, sub, mul, div };

// out [full] = a [a's shape] op b [b's shape], with operand 1 = a, operand 2 = b of g.
void binary_forward(BinaryOp op, float* out, const float* a, const float* b,
                    const BroadcastGeometry& g);

// Accumulates the elementwise gradients at full resolution: da [full] += dout * d(a op b)/da,
// db [full] += dout * d(a op b)/db (either may be null). Broadcast operands still need their
// gradient summed down to their own shape afterwards (sum_reduce).
void binary_backward(BinaryOp op, float* da, float* db, const float* dout, const float* a,
                     const float* b, const BroadcastGeometry& g);

// out [operand 2's shape] = scale * sum of inp [full] over the dimensions where operand 2 is
// broadcast (g from broadcast_geometry(full, full, reduced_shape)). Each output element is summed
// in double, in row-major order of inp, so the result does not depend on the thread count.
void sum_reduce(float* out, const float* inp, double scale, const BroadcastGeometry& g);

// The adjoint of sum_reduce: dinp [full] += scale * dout [operand 2's shape], broadcast.
void broadcast_accumulate(float* dinp, const float* dout, float scale, const BroadcastGeometry& g);

}  // namespace dpm
