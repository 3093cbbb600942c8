#include "autograd/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace dpm {
namespace {

constexpr size_t kAlignment = 64;

// Freed tensor storage is kept for reuse, by exact (aligned) size: a training step allocates the
// same sizes every step, and taking them from the cache avoids the fresh pages (page faults and
// the kernel's zeroing) that large mallocs cost each time. At most kMaxCachedBytes are kept
// idle; beyond that blocks go back to free(). Disabled under AddressSanitizer, so a use after
// free is still caught.
#if defined(__SANITIZE_ADDRESS__)  // GCC
#define DPM_ADDRESS_SANITIZER 1
#elif defined(__has_feature)  // clang (the fuzz targets)
#if __has_feature(address_sanitizer)
#define DPM_ADDRESS_SANITIZER 1
#endif
#endif
#ifdef DPM_ADDRESS_SANITIZER
constexpr size_t kMaxCachedBytes = 0;
#else
constexpr size_t kMaxCachedBytes = size_t{1} << 30;
#endif

class StorageCache {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  void give_back(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(p);
        cached_bytes_ += bytes;
        return;
      }
    }
    std::free(p);
  }

  size_t release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t released = cached_bytes_;
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
    return released;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

// Never destroyed: tensors in static objects may give their storage back during exit.
StorageCache& storage_cache() {
  static StorageCache* cache = new StorageCache;
  return *cache;
}

std::shared_ptr<float> allocate(int64_t n) {
  size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  return std::shared_ptr<float>(static_cast<float*>(storage_cache().take(bytes)),
                                [bytes](float* q) { storage_cache().give_back(q, bytes); });
}

}  // namespace

size_t empty_storage_cache() {
  return storage_cache().release_all();
}

Tensor Tensor::empty(const Shape& shape) {
  return Tensor(allocate(shape.numel()), 0, shape, shape.contiguous_strides());
}

Tensor Tensor::zeros(const Shape& shape) {
  Tensor t = empty(shape);
  std::memset(t.data(), 0, static_cast<size_t>(t.numel()) * sizeof(float));
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  std::fill_n(t.data(), t.numel(), value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values for shape " + shape.str() + " (" +
                                std::to_string(shape.numel()) + " elements)");
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != expected) return false;
    expected *= shape_[d];
  }
  return true;
}

const Tensor& Tensor::require_contiguous(const char* caller) const {
  if (!defined()) throw std::invalid_argument(std::string(caller) + ": undefined tensor");
  if (!is_contiguous())
    throw std::invalid_argument(std::string(caller) + ": needs a contiguous tensor, got shape " +
                                shape_.str() + " with strides " + strides_.str() +
                                " (call contiguous() first)");
  return *this;
}

Tensor Tensor::contiguous() const {
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_);
  out.copy_(*this);
  return out;
}

Tensor Tensor::view(const Shape& shape) const {
  require_contiguous("Tensor::view");
  if (shape.numel() != numel())
    throw std::invalid_argument("view: cannot view shape " + shape_.str() + " (" +
                                std::to_string(numel()) + " elements) as " + shape.str());
  return Tensor(storage_, offset_, shape, shape.contiguous_strides());
}

Tensor Tensor::reshape(const Shape& shape) const {
  return contiguous().view(shape);
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> dims(static_cast<size_t>(ndim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[static_cast<size_t>(shape_.normalize_dim(dim0))],
            dims[static_cast<size_t>(shape_.normalize_dim(dim1))]);
  return permute(dims);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  if (static_cast<int>(dims.size()) != ndim())
    throw std::invalid_argument("permute: " + std::to_string(dims.size()) +
                                " dimensions given for a tensor of shape " + shape_.str());
  Shape shape = shape_;
  Strides strides = strides_;
  std::vector<bool> seen(dims.size(), false);
  for (int i = 0; i < ndim(); ++i) {
    int d = shape_.normalize_dim(dims[static_cast<size_t>(i)]);
    if (seen[static_cast<size_t>(d)])
      throw std::invalid_argument("permute: dimension " + std::to_string(d) + " repeated");
    seen[static_cast<size_t>(d)] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return Tensor(storage_, offset_, shape, strides);
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  int d = shape_.normalize_dim(dim);
  if (start < 0 || length < 0 || start + length > shape_[d])
    throw std::out_of_range("narrow: range [" + std::to_string(start) + ", " +
                            std::to_string(start + length) + ") outside dimension " +
                            std::to_string(d) + " of shape " + shape_.str());
  Shape shape = shape_;
  shape[d] = length;
  return Tensor(storage_, offset_ + start * strides_[d], shape, strides_);
}

int64_t Tensor::element_offset(std::initializer_list<int64_t> index) const {
  if (static_cast<int>(index.size()) != ndim())
    throw std::invalid_argument("at: " + std::to_string(index.size()) +
                                " indices for a tensor of shape " + shape_.str());
  int64_t off = 0;
  int d = 0;
  for (int64_t i : index) {
    if (i < 0 || i >= shape_[d])
      throw std::out_of_range("at: index " + std::to_string(i) + " out of range in dimension " +
                              std::to_string(d) + " of shape " + shape_.str());
    off += i * strides_[d++];
  }
  return off;
}

float& Tensor::at(std::initializer_list<int64_t> index) {
  return data()[element_offset(index)];
}
float Tensor::at(std::initializer_list<int64_t> index) const {
  return data()[element_offset(index)];
}

float Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("item: tensor of shape " + shape_.str() + " has " +
                                std::to_string(numel()) + " elements, expected 1");
  return data()[0];
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<size_t>(numel()));
  const float* p = data();
  for_each_offset(shape_, strides_,
                  [&](int64_t i, int64_t off) { v[static_cast<size_t>(i)] = p[off]; });
  return v;
}

Tensor& Tensor::fill_(float value) {
  float* p = data();
  for_each_offset(shape_, strides_, [&](int64_t, int64_t off) { p[off] = value; });
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape_)
    throw std::invalid_argument("copy_: source shape " + src.shape().str() +
                                " differs from destination " + shape_.str());
  if (is_contiguous() && src.is_contiguous()) {
    std::memmove(data(), src.data(), static_cast<size_t>(numel()) * sizeof(float));
    return *this;
  }
  std::vector<float> values = src.to_vector();  // safe when src and *this overlap
  float* p = data();
  for_each_offset(shape_, strides_,
                  [&](int64_t i, int64_t off) { p[off] = values[static_cast<size_t>(i)]; });
  return *this;
}

Tensor& Tensor::add_(const Tensor& src, float alpha) {
  if (src.shape() != shape_)
    throw std::invalid_argument("add_: source shape " + src.shape().str() +
                                " differs from destination " + shape_.str());
  require_contiguous("Tensor::add_");
  Tensor s = src.contiguous();
  float* p = data();
  const float* q = s.data();
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] += alpha * q[i];
  return *this;
}

std::string Tensor::str(int max_per_dim) const {
  std::ostringstream os;
  os << "Tensor(shape=" << shape_.str();
  if (!defined()) return os.str() + ", undefined)";
  os << ", data=";
  std::vector<float> v = to_vector();
  size_t shown = std::min(v.size(), static_cast<size_t>(max_per_dim) * 4);
  os << "[";
  for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << v[i];
  if (shown < v.size()) os << ", ... (" << v.size() << " total)";
  os << "])";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.str();
}

}  // namespace dpm
