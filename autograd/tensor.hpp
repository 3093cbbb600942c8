#pragma once
// Tensor: float32 data of up to 5 dimensions over a shared, 64-byte aligned storage.
// Views (view, reshape of contiguous data, transpose, permute, narrow) share storage and copy
// nothing; kernels take contiguous tensors, so call contiguous() (a copy only when needed) first.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "autograd/shape.hpp"

namespace dpm {

class Tensor {
 public:
  Tensor() = default;  // undefined: holds no storage

  static Tensor empty(const Shape& shape);  // uninitialised contents
  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape) { return full(shape, 1.0f); }
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value) { return full(Shape{}, value); }
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape()); }
  static Tensor empty_like(const Tensor& t) { return empty(t.shape()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int ndim() const { return shape_.ndim(); }
  int64_t numel() const { return shape_.numel(); }
  int64_t size(int dim) const { return shape_.size(dim); }
  bool is_contiguous() const;

  // Pointer to the first element. Kernels index it densely, so only use it on contiguous tensors
  // (require_contiguous() checks and names the caller).
  float* data() { return storage_.get() + offset_; }
  const float* data() const { return storage_.get() + offset_; }
  const Tensor& require_contiguous(const char* caller) const;

  Tensor contiguous() const;  // *this when already contiguous, else a dense copy
  Tensor clone() const;       // always a dense copy
  Tensor view(const Shape& shape) const;     // no copy; needs contiguous data, same numel
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy then view
  Tensor transpose(int dim0, int dim1) const;
  Tensor permute(const std::vector<int>& dims) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const;

  float& at(std::initializer_list<int64_t> index);
  float at(std::initializer_list<int64_t> index) const;
  float item() const;  // the value of a one-element tensor
  std::vector<float> to_vector() const;

  Tensor& fill_(float value);
  Tensor& zero_() { return fill_(0.0f); }
  Tensor& copy_(const Tensor& src);  // same shape; any strides on either side
  Tensor& add_(const Tensor& src, float alpha = 1.0f);  // this += alpha * src, same shape

  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }
  std::string str(int max_per_dim = 6) const;

 private:
  Tensor(std::shared_ptr<float> storage, int64_t offset, Shape shape, Strides strides)
      : storage_(std::move(storage)), offset_(offset), shape_(shape), strides_(strides) {}
  int64_t element_offset(std::initializer_list<int64_t> index) const;

  std::shared_ptr<float> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  Strides strides_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Tensor storage freed by its last owner is kept for reuse by exact size (training steps
// allocate the same sizes every step). This returns those idle blocks to the system, e.g.
// between training and an evaluation at another batch size, whose sizes the cache cannot serve
// (as torch.cuda.empty_cache). Returns the bytes freed.
size_t empty_storage_cache();

// Visits every element of t in row-major order, with its linear storage offset from t.data().
// Used by the strided copy and printing; kernels work on contiguous data instead.
template <typename F>
void for_each_offset(const Shape& shape, const Strides& strides, F&& f) {
  int64_t n = shape.numel();
  if (n == 0) return;
  int nd = shape.ndim();
  std::array<int64_t, kMaxDims> idx{};
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int d = nd - 1; d >= 0; --d) {
      size_t ud = static_cast<size_t>(d);
      if (++idx[ud] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[ud] = 0;
    }
  }
}

}  // namespace dpm
