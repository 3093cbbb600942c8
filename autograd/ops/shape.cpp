#include "autograd/ops/shape.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/kernels/slab.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

// The [outer, extent, inner] view of `shape` around dimension d (already normalised).
SlabGeometry slab_around(const Shape& shape, int d) {
  SlabGeometry g;
  for (int i = 0; i < d; ++i) g.outer *= shape[i];
  for (int i = d + 1; i < shape.ndim(); ++i) g.inner *= shape[i];
  return g;
}

Variable permute_impl(const Variable& a, const std::vector<int>& dims, const char* name) {
  detail::require_defined(a, name, "input");
  if (static_cast<int>(dims.size()) != a.ndim())
    throw std::invalid_argument(std::string(name) + ": " + std::to_string(dims.size()) +
                                " dimensions given for a tensor of shape " + a.shape().str());
  std::vector<int> normalized(dims.size()), inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = detail::normalize_dim(a.shape(), dims[i], name);
    if (inverse[static_cast<size_t>(d)] >= 0)
      throw std::invalid_argument(std::string(name) + ": dimension " + std::to_string(d) +
                                  " repeated");
    normalized[i] = d;
    inverse[static_cast<size_t>(d)] = static_cast<int>(i);
  }
  return Variable::make_result(
      a.data().permute(normalized).clone(), {a},
      [inverse](const Tensor& grad_out, std::vector<Variable>& inputs) {
        detail::add_to_grad(inputs[0], grad_out.permute(inverse));
      },
      name);
}

}  // namespace

Variable reshape(const Variable& a, const Shape& shape) {
  detail::require_defined(a, "reshape", "input");
  if (shape.numel() != a.numel())
    throw std::invalid_argument("reshape: cannot reshape " + a.shape().str() + " (" +
                                std::to_string(a.numel()) + " elements) into " + shape.str() +
                                " (" + std::to_string(shape.numel()) + " elements)");
  return Variable::make_result(
      a.data().reshape(shape), {a},
      [](const Tensor& grad_out, std::vector<Variable>& inputs) {
        detail::add_to_grad(inputs[0], grad_out);  // same elements in the same row-major order
      },
      "reshape");
}

Variable flatten(const Variable& a, int start_dim) {
  detail::require_defined(a, "flatten", "input");
  int start = detail::normalize_dim(a.shape(), start_dim, "flatten");
  std::vector<int64_t> dims = a.shape().vec();
  int64_t tail =
      std::accumulate(dims.begin() + start, dims.end(), int64_t{1}, std::multiplies<int64_t>());
  dims.resize(static_cast<size_t>(start));
  dims.push_back(tail);
  return reshape(a, Shape(dims));
}

Variable permute(const Variable& a, const std::vector<int>& dims) {
  return permute_impl(a, dims, "permute");
}

Variable transpose(const Variable& a, int dim0, int dim1) {
  detail::require_defined(a, "transpose", "input");
  std::vector<int> dims(static_cast<size_t>(a.ndim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[static_cast<size_t>(detail::normalize_dim(a.shape(), dim0, "transpose"))],
            dims[static_cast<size_t>(detail::normalize_dim(a.shape(), dim1, "transpose"))]);
  return permute_impl(a, dims, "transpose");
}

Variable concat(const std::vector<Variable>& parts, int dim) {
  if (parts.empty()) throw std::invalid_argument("concat: no parts given");
  for (const Variable& p : parts) detail::require_defined(p, "concat", "a part");
  const Shape& first = parts[0].shape();
  int d = detail::normalize_dim(first, dim, "concat");
  Shape out_shape = first;
  out_shape[d] = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    Shape expected = first;
    expected[d] = parts[k].shape()[d];
    if (parts[k].shape() != expected)
      throw std::invalid_argument("concat: part " + std::to_string(k) + " has shape " +
                                  parts[k].shape().str() + ", expected " + expected.str() +
                                  " (all parts must match except along dimension " +
                                  std::to_string(d) + ")");
    out_shape[d] += expected[d];
  }
  Tensor out = Tensor::empty(out_shape);
  SlabGeometry g = slab_around(out_shape, d);
  g.dst_extent = out_shape[d];
  for (const Variable& p : parts) {  // part k lands at planes [dst_start, dst_start + length)
    Tensor src = p.data().contiguous();
    g.length = g.src_extent = p.shape()[d];
    slab_copy(out.data(), src.data(), g);
    g.dst_start += g.length;
  }
  return Variable::make_result(
      out, parts,
      [d, g](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        // The reverse copy: part k's gradient is planes [start, start + length) of gout.
        SlabGeometry back{.outer = g.outer, .inner = g.inner, .src_extent = g.dst_extent};
        for (Variable& part : inputs) {
          back.length = back.dst_extent = part.shape()[d];
          if (part.requires_grad())
            detail::accumulate_grad(part,
                                    [&](float* dp) { slab_accumulate(dp, gout.data(), back); });
          back.src_start += back.length;
        }
      },
      "concat");
}

Variable slice(const Variable& a, int dim, int64_t start, int64_t end) {
  detail::require_defined(a, "slice", "input");
  int d = detail::normalize_dim(a.shape(), dim, "slice");
  if (start < 0 || end < start || end > a.shape()[d])
    throw std::invalid_argument("slice: range [" + std::to_string(start) + ", " +
                                std::to_string(end) + ") outside dimension " + std::to_string(d) +
                                " of shape " + a.shape().str());
  Shape out_shape = a.shape();
  out_shape[d] = end - start;
  SlabGeometry g = slab_around(out_shape, d);
  g.length = g.dst_extent = end - start;
  g.src_extent = a.shape()[d];
  g.src_start = start;
  Tensor src = a.data().contiguous();
  Tensor out = Tensor::empty(out_shape);
  slab_copy(out.data(), src.data(), g);
  // The backward copies the other way: output planes [0, length) into input planes at start.
  SlabGeometry back{.outer = g.outer,
                    .inner = g.inner,
                    .length = g.length,
                    .dst_extent = g.src_extent,
                    .dst_start = start,
                    .src_extent = g.length};
  return Variable::make_result(
      out, {a},
      [back](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        detail::accumulate_grad(inputs[0],
                                [&](float* dp) { slab_accumulate(dp, gout.data(), back); });
      },
      "slice");
}

std::vector<Variable> split(const Variable& a, const std::vector<int64_t>& sizes, int dim) {
  detail::require_defined(a, "split", "input");
  int d = detail::normalize_dim(a.shape(), dim, "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw std::invalid_argument("split: negative size " + std::to_string(s));
    total += s;
  }
  if (total != a.shape()[d])
    throw std::invalid_argument("split: sizes sum to " + std::to_string(total) + " but dimension " +
                                std::to_string(d) + " of shape " + a.shape().str() + " has " +
                                std::to_string(a.shape()[d]));
  std::vector<Variable> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(slice(a, d, start, start + s));
    start += s;
  }
  return parts;
}

std::vector<Variable> chunk(const Variable& a, int chunks, int dim) {
  detail::require_defined(a, "chunk", "input");
  int d = detail::normalize_dim(a.shape(), dim, "chunk");
  int64_t extent = a.shape()[d];
  if (chunks <= 0 || extent % chunks != 0)
    throw std::invalid_argument("chunk: " + std::to_string(chunks) +
                                " chunks do not divide dimension " + std::to_string(d) +
                                " of shape " + a.shape().str() + " evenly");
  return split(a, std::vector<int64_t>(static_cast<size_t>(chunks), extent / chunks), d);
}

}  // namespace dpm
