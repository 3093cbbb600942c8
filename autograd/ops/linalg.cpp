#include "autograd/ops/linalg.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "autograd/kernels/matmul.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

void require_ndim(const Variable& v, int ndim, const char* op, const char* what) {
  if (v.ndim() != ndim)
    throw std::invalid_argument(std::string(op) + ": " + what + ", got shape " + v.shape().str());
}

// a [batch, M, K] x b [batch, K, N], shapes already checked; out_shape drops the batch for matmul.
Variable batched_matmul(const Variable& a, const Variable& b, int64_t batch, const Shape& out_shape,
                        const char* name) {
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (b.size(-2) != K)
    throw std::invalid_argument(std::string(name) + ": inner dimensions differ: a " +
                                a.shape().str() + " has K = " + std::to_string(K) + ", b " +
                                b.shape().str() + " has K = " + std::to_string(b.size(-2)));
  Tensor ta = a.data().contiguous(), tb = b.data().contiguous();
  Tensor out = Tensor::empty(out_shape);
  matmul_forward(out.data(), ta.data(), tb.data(), batch, M, K, N);
  return Variable::make_result(
      out, {a, b},
      [ta, tb, batch, M, K, N](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        if (inputs[0].requires_grad())
          detail::accumulate_grad(inputs[0], [&](float* da) {
            matmul_backward(da, nullptr, gout.data(), ta.data(), tb.data(), batch, M, K, N);
          });
        if (inputs[1].requires_grad())
          detail::accumulate_grad(inputs[1], [&](float* db) {
            matmul_backward(nullptr, db, gout.data(), ta.data(), tb.data(), batch, M, K, N);
          });
      },
      name);
}

}  // namespace

Variable matmul(const Variable& a, const Variable& b) {
  detail::require_defined(a, "matmul", "a");
  detail::require_defined(b, "matmul", "b");
  require_ndim(a, 2, "matmul", "a must be 2-D [M, K]");
  require_ndim(b, 2, "matmul", "b must be 2-D [K, N]");
  return batched_matmul(a, b, 1, Shape{a.size(0), b.size(1)}, "matmul");
}

Variable bmm(const Variable& a, const Variable& b) {
  detail::require_defined(a, "bmm", "a");
  detail::require_defined(b, "bmm", "b");
  require_ndim(a, 3, "bmm", "a must be 3-D [B, M, K]");
  require_ndim(b, 3, "bmm", "b must be 3-D [B, K, N]");
  if (a.size(0) != b.size(0))
    throw std::invalid_argument("bmm: batch sizes differ: a " + a.shape().str() + ", b " +
                                b.shape().str());
  return batched_matmul(a, b, a.size(0), Shape{a.size(0), a.size(1), b.size(2)}, "bmm");
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  detail::require_defined(x, "linear", "input");
  detail::require_defined(weight, "linear", "weight");
  if (x.ndim() < 1)
    throw std::invalid_argument("linear: input must have a feature dimension, got shape []");
  require_ndim(weight, 2, "linear", "weight must be 2-D [out, in]");
  int64_t in_features = x.size(-1), out_features = weight.size(0);
  if (weight.size(1) != in_features)
    throw std::invalid_argument("linear: weight " + weight.shape().str() + " has " +
                                std::to_string(weight.size(1)) + " input features, input " +
                                x.shape().str() + " has " + std::to_string(in_features));
  if (bias.defined() && bias.shape() != Shape{out_features})
    throw std::invalid_argument("linear: bias has shape " + bias.shape().str() + ", expected [" +
                                std::to_string(out_features) + "]");
  // Leading dimensions fold into the GEMM's rows: one GEMM for any input rank.
  int64_t M = x.numel() / std::max<int64_t>(1, in_features);
  Shape out_shape = x.shape();
  out_shape[x.ndim() - 1] = out_features;
  Tensor tx = x.data().contiguous(), tw = weight.data().contiguous();
  Tensor tb = bias.defined() ? bias.data().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape);
  linear_forward(out.data(), tx.data(), tw.data(), tb.defined() ? tb.data() : nullptr, M,
                 in_features, out_features);
  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return Variable::make_result(
      out, std::move(inputs),
      [tx, tw, M, in_features, out_features](const Tensor& grad_out,
                                             std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        auto backward_into = [&](float* dinp, float* dweight, float* dbias) {
          linear_backward(dinp, dweight, dbias, gout.data(), tx.data(), tw.data(), M, in_features,
                          out_features);
        };
        if (inputs[0].requires_grad())
          detail::accumulate_grad(inputs[0], [&](float* d) { backward_into(d, nullptr, nullptr); });
        if (inputs[1].requires_grad())
          detail::accumulate_grad(inputs[1], [&](float* d) { backward_into(nullptr, d, nullptr); });
        if (inputs.size() > 2 && inputs[2].requires_grad())
          detail::accumulate_grad(inputs[2], [&](float* d) { backward_into(nullptr, nullptr, d); });
      },
      "linear");
}

}  // namespace dpm
