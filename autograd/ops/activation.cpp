#include "autograd/ops/activation.hpp"

#include "autograd/kernels/activation.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

using PointwiseForward = void (*)(float* out, const float* inp, int64_t n);
// (dinp, dout, saved, n): `saved` is the input or, for tanh and sigmoid, the output.
using PointwiseBackward = void (*)(float* dinp, const float* dout, const float* saved, int64_t n);

enum class Saved { input, output };

Variable pointwise(const Variable& a, PointwiseForward forward, PointwiseBackward backward,
                   Saved saved, const char* name) {
  detail::require_defined(a, name, "input");
  Tensor x = a.data().contiguous();
  Tensor out = Tensor::empty(x.shape());
  forward(out.data(), x.data(), x.numel());
  Tensor keep = saved == Saved::input ? x : out;
  return Variable::make_result(
      out, {a},
      [backward, keep](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        detail::accumulate_grad(
            inputs[0], [&](float* d) { backward(d, gout.data(), keep.data(), keep.numel()); });
      },
      name);
}

}  // namespace

Variable relu(const Variable& a) {
  return pointwise(a, relu_forward, relu_backward, Saved::input, "relu");
}
Variable silu(const Variable& a) {
  return pointwise(a, silu_forward, silu_backward, Saved::input, "silu");
}
Variable gelu(const Variable& a) {
  return pointwise(a, gelu_forward, gelu_backward, Saved::input, "gelu");
}
Variable tanh(const Variable& a) {
  return pointwise(a, tanh_forward, tanh_backward, Saved::output, "tanh");
}
Variable sigmoid(const Variable& a) {
  return pointwise(a, sigmoid_forward, sigmoid_backward, Saved::output, "sigmoid");
}

Variable softmax(const Variable& a, int dim) {
  detail::require_defined(a, "softmax", "input");
  int d = detail::normalize_dim(a.shape(), dim, "softmax");
  int64_t outer = 1, inner = 1, extent = a.shape()[d];
  for (int i = 0; i < d; ++i) outer *= a.shape()[i];
  for (int i = d + 1; i < a.ndim(); ++i) inner *= a.shape()[i];
  Tensor x = a.data().contiguous();
  Tensor out = Tensor::empty(x.shape());
  softmax_forward(out.data(), x.data(), outer, extent, inner);
  return Variable::make_result(
      out, {a},
      [out, outer, extent, inner](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        detail::accumulate_grad(inputs[0], [&](float* dx) {
          softmax_backward(dx, gout.data(), out.data(), outer, extent, inner);
        });
      },
      "softmax");
}

}  // namespace dpm
