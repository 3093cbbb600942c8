#pragma once
// Shape: up to kMaxDims extents, stored inline (no allocation), with row-major helpers.
// Strides: the element step of each dimension of a tensor, a type of their own so that a stride
// is never passed where an extent belongs.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace dpm {

inline constexpr int kMaxDims = 5;

class Strides {
 public:
  Strides() = default;
  Strides(std::initializer_list<int64_t> steps);

  int ndim() const { return ndim_; }
  int64_t operator[](int i) const { return steps_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return steps_[static_cast<size_t>(i)]; }
  std::string str() const;  // "[12, 4, 1]"

  bool operator==(const Strides& other) const = default;  // steps past ndim are always 0

 private:
  friend class Shape;
  explicit Strides(int ndim) : ndim_(ndim) {}

  std::array<int64_t, kMaxDims> steps_{};
  int ndim_ = 0;
};

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int ndim() const { return ndim_; }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  // Extent of a dimension; negative indices count from the end, like Python.
  int64_t size(int dim) const { return dims_[static_cast<size_t>(normalize_dim(dim))]; }
  int64_t numel() const;
  // Maps -ndim..ndim-1 to 0..ndim-1; throws std::out_of_range naming the dimension otherwise.
  int normalize_dim(int dim) const;
  std::vector<int64_t> vec() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  // Row-major strides (in elements) of a contiguous tensor of this shape.
  Strides contiguous_strides() const;
  std::string str() const;  // "[2, 3, 4]"

  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

// NumPy broadcasting of two shapes; throws std::invalid_argument naming both shapes if incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace dpm
