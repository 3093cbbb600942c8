#include "autograd/ops/reduce.hpp"

#include <array>
#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/kernels/broadcast.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

// Sums (scaled by 1/count for the mean) over `dims`. An empty list reduces nothing, as in NumPy.
Variable reduce(const Variable& a, const std::vector<int>& dims, bool keepdim, bool mean,
                const char* name) {
  detail::require_defined(a, name, "input");
  const Shape& in = a.shape();
  std::array<bool, kMaxDims> reduced{};
  for (int dim : dims) {
    int d = detail::normalize_dim(in, dim, name);
    if (reduced[static_cast<size_t>(d)])
      throw std::invalid_argument(std::string(name) + ": dimension " + std::to_string(d) +
                                  " listed twice");
    reduced[static_cast<size_t>(d)] = true;
  }
  std::vector<int64_t> kept_dims = in.vec(), out_dims;
  int64_t count = 1;
  for (int d = 0; d < in.ndim(); ++d) {
    if (reduced[static_cast<size_t>(d)]) {
      count *= in[d];
      kept_dims[static_cast<size_t>(d)] = 1;
    } else {
      out_dims.push_back(in[d]);
    }
  }
  Shape kept(kept_dims);
  double scale = mean ? 1.0 / static_cast<double>(count) : 1.0;
  BroadcastGeometry g = broadcast_geometry(in, in, kept);
  Tensor x = a.data().contiguous();
  Tensor out = Tensor::empty(kept);
  sum_reduce(out.data(), x.data(), scale, g);
  return Variable::make_result(
      out.view(keepdim ? kept : Shape(out_dims)), {a},
      [g, scale](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        detail::accumulate_grad(inputs[0], [&](float* d) {
          broadcast_accumulate(d, gout.data(), static_cast<float>(scale), g);
        });
      },
      name);
}

std::vector<int> all_dims(const Variable& a) {
  std::vector<int> dims(static_cast<size_t>(a.defined() ? a.ndim() : 0));
  std::iota(dims.begin(), dims.end(), 0);
  return dims;
}

}  // namespace

Variable sum(const Variable& a) {
  return reduce(a, all_dims(a), false, false, "sum");
}
Variable sum(const Variable& a, const std::vector<int>& dims, bool keepdim) {
  return reduce(a, dims, keepdim, false, "sum");
}
Variable mean(const Variable& a) {
  return reduce(a, all_dims(a), false, true, "mean");
}
Variable mean(const Variable& a, const std::vector<int>& dims, bool keepdim) {
  return reduce(a, dims, keepdim, true, "mean");
}

}  // namespace dpm
