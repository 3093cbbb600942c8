#include "diffusion/double_batch.hpp"

#include <stdexcept>
#include <string>

namespace dpm::diffusion {

DoubleBatch DoubleBatch::from_tensor(const Tensor& x) {
  if (!x.defined() || x.ndim() < 1)
    throw std::invalid_argument("DoubleBatch::from_tensor: x must have a batch dimension, got " +
                                (x.defined() ? x.shape().str() : std::string("undefined")));
  Tensor c = x.contiguous();
  return {c.shape(), std::vector<double>(c.data(), c.data() + c.numel())};
}

DoubleBatch DoubleBatch::from_rows(std::vector<double> values, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 1 || static_cast<int64_t>(values.size()) != rows * cols)
    throw std::invalid_argument("DoubleBatch::from_rows: " + std::to_string(values.size()) +
                                " values do not form [" + std::to_string(rows) + ", " +
                                std::to_string(cols) + "]");
  return {Shape{rows, cols}, std::move(values)};
}

Tensor DoubleBatch::to_tensor() const {
  validate("DoubleBatch::to_tensor");
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<float>(values[i]);
  return t;
}

int64_t DoubleBatch::row_size() const {
  int64_t size = 1;
  for (int d = 1; d < shape.ndim(); ++d) size *= shape[d];
  return size;
}

void DoubleBatch::validate(const char* caller) const {
  if (shape.ndim() < 1)
    throw std::invalid_argument(std::string(caller) + ": batch must be [B, ...], got shape " +
                                shape.str());
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw std::invalid_argument(std::string(caller) + ": batch of shape " + shape.str() +
                                " holds " + std::to_string(values.size()) + " values, expected " +
                                std::to_string(shape.numel()));
}

}  // namespace dpm::diffusion
