#pragma once
// DoubleBatch: a batch [B, ...] held in double, row-major. The reverse processes keep their state
// in this form, so that with a double-precision predictor (the exact oracle eps*) a whole
// reverse path runs without float32 rounding; a float32 network only rounds its own input.
#include <cstdint>
#include <vector>

#include "autograd/shape.hpp"
#include "autograd/tensor.hpp"

namespace dpm::diffusion {

struct DoubleBatch {
  Shape shape;                 // [B, ...], at least one dimension
  std::vector<double> values;  // shape.numel() values, row-major

  static DoubleBatch from_tensor(const Tensor& x);
  // [rows, cols] from row-major values; throws unless values.size() == rows * cols.
  static DoubleBatch from_rows(std::vector<double> values, int64_t rows, int64_t cols);
  Tensor to_tensor() const;  // rounded to float32
  int64_t batch() const { return shape[0]; }
  int64_t row_size() const;  // numel / B: the length of one sample
  // Throws std::invalid_argument naming `caller` unless the shape has a batch dimension and the
  // value count matches it.
  void validate(const char* caller) const;
};

}  // namespace dpm::diffusion
