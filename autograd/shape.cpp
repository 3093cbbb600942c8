#include "autograd/shape.hpp"

#include <algorithm>
#include <stdexcept>

namespace dpm {
namespace {

std::string bracketed(const int64_t* values, int count) {
  std::string s = "[";
  for (int i = 0; i < count; ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

}  // namespace

Strides::Strides(std::initializer_list<int64_t> steps) {
  if (steps.size() > kMaxDims)
    throw std::invalid_argument("Strides: " + std::to_string(steps.size()) +
                                " dimensions given, at most " + std::to_string(kMaxDims) +
                                " supported");
  ndim_ = static_cast<int>(steps.size());
  std::copy(steps.begin(), steps.end(), steps_.begin());
}

std::string Strides::str() const {
  return bracketed(steps_.data(), ndim_);
}

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  if (dims.size() > kMaxDims)
    throw std::invalid_argument("Shape: " + std::to_string(dims.size()) + " dimensions given, at most " +
                                std::to_string(kMaxDims) + " supported");
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("Shape: negative extent " + std::to_string(d));
  ndim_ = static_cast<int>(dims.size());
  for (int i = 0; i < ndim_; ++i) dims_[static_cast<size_t>(i)] = dims[static_cast<size_t>(i)];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= (*this)[i];
  return n;
}

int Shape::normalize_dim(int dim) const {
  int d = dim < 0 ? dim + ndim_ : dim;
  if (d < 0 || d >= ndim_)
    throw std::out_of_range("dimension " + std::to_string(dim) + " out of range for shape " + str());
  return d;
}

Strides Shape::contiguous_strides() const {
  Strides strides(ndim_);
  int64_t s = 1;
  for (int i = ndim_ - 1; i >= 0; --i) {
    strides[i] = s;
    s *= (*this)[i];
  }
  return strides;
}

std::string Shape::str() const {
  return bracketed(dims_.data(), ndim_);
}

bool Shape::operator==(const Shape& other) const {
  if (ndim_ != other.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if ((*this)[i] != other[i]) return false;
  return true;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  int n = std::max(a.ndim(), b.ndim());
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    int ia = a.ndim() - n + i, ib = b.ndim() - n + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument("cannot broadcast shapes " + a.str() + " and " + b.str());
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(out);
}

}  // namespace dpm
