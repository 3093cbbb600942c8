#pragma once
// Helpers shared by the op implementations (not part of the public op API).
#include <stdexcept>
#include <string>

#include "autograd/variable.hpp"

namespace dpm::detail {

// Kernels accumulate into dense arrays, but a gradient bound with set_grad may be a strided view:
// then accumulate into a dense copy and write it back.
template <typename F>
void accumulate_grad(Variable& v, F&& accumulate) {
  Tensor& grad = v.grad_buffer();
  if (grad.is_contiguous()) {
    accumulate(grad.data());
  } else {
    Tensor dense = grad.clone();
    accumulate(dense.data());
    grad.copy_(dense);
  }
}

// v.grad += g (same number of elements; g in v's row-major order).
inline void add_to_grad(Variable& v, const Tensor& g) {
  Tensor src = g.contiguous();
  const float* s = src.data();
  int64_t n = src.numel();
  accumulate_grad(v, [&](float* d) {
    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
  });
}

inline void require_defined(const Variable& v, const char* op, const char* argument) {
  if (!v.defined())
    throw std::invalid_argument(std::string(op) + ": " + argument + " is undefined");
}

// Shape::normalize_dim with the op's name in the message and std::invalid_argument.
inline int normalize_dim(const Shape& shape, int dim, const char* op) {
  if (dim < -shape.ndim() || dim >= shape.ndim())
    throw std::invalid_argument(std::string(op) + ": dimension " + std::to_string(dim) +
                                " out of range for shape " + shape.str());
  return dim < 0 ? dim + shape.ndim() : dim;
}

}  // namespace dpm::detail
