#include "autograd/ops/arith.hpp"

#include <stdexcept>
#include <string>

#include "autograd/kernels/broadcast.hpp"
#include "autograd/kernels/elementwise.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

Variable binary(BinaryOp op, const char* name, const Variable& a, const Variable& b) {
  detail::require_defined(a, name, "a");
  detail::require_defined(b, name, "b");
  Shape full;
  try {
    full = broadcast_shapes(a.shape(), b.shape());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(name) + ": " + e.what());
  }
  Tensor ta = a.data().contiguous(), tb = b.data().contiguous();
  BroadcastGeometry g = broadcast_geometry(full, ta.shape(), tb.shape());
  Tensor out = Tensor::empty(full);
  binary_forward(op, out.data(), ta.data(), tb.data(), g);
  return Variable::make_result(
      out, {a, b},
      [op, ta, tb, g](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        for (size_t k = 0; k < 2; ++k) {
          if (!inputs[k].requires_grad()) continue;
          auto accumulate_full = [&](float* d) {
            binary_backward(op, k == 0 ? d : nullptr, k == 1 ? d : nullptr, gout.data(), ta.data(),
                            tb.data(), g);
          };
          if (inputs[k].shape() == gout.shape()) {
            detail::accumulate_grad(inputs[k], accumulate_full);
          } else {  // broadcast operand: gradient at full resolution, then summed down
            Tensor full_grad = Tensor::zeros(gout.shape());
            accumulate_full(full_grad.data());
            detail::add_to_grad(inputs[k], sum_to_shape(full_grad, inputs[k].shape()));
          }
        }
      },
      name);
}

Variable unary(UnaryOp op, const char* name, const Variable& a, float param = 0.0f) {
  detail::require_defined(a, name, "input");
  Tensor x = a.data().contiguous();
  Tensor out = Tensor::empty(x.shape());
  unary_forward(op, out.data(), x.data(), x.numel(), param);
  return Variable::make_result(
      out, {a},
      [op, x, out, param](const Tensor& grad_out, std::vector<Variable>& inputs) {
        Tensor gout = grad_out.contiguous();
        detail::accumulate_grad(inputs[0], [&](float* d) {
          unary_backward(op, d, gout.data(), x.data(), out.data(), x.numel(), param);
        });
      },
      name);
}

}  // namespace

Variable add(const Variable& a, const Variable& b) {
  return binary(BinaryOp::add, "add", a, b);
}
Variable sub(const Variable& a, const Variable& b) {
  return binary(BinaryOp::sub, "sub", a, b);
}
Variable mul(const Variable& a, const Variable& b) {
  return binary(BinaryOp::mul, "mul", a, b);
}
Variable div(const Variable& a, const Variable& b) {
  return binary(BinaryOp::div, "div", a, b);
}

Variable add_scalar(const Variable& a, float s) {
  return unary(UnaryOp::add_scalar, "add_scalar", a, s);
}
Variable mul_scalar(const Variable& a, float s) {
  return unary(UnaryOp::mul_scalar, "mul_scalar", a, s);
}
Variable neg(const Variable& a) {
  return unary(UnaryOp::neg, "neg", a);
}
Variable exp(const Variable& a) {
  return unary(UnaryOp::exp, "exp", a);
}
Variable log(const Variable& a) {
  return unary(UnaryOp::log, "log", a);
}
Variable sqrt(const Variable& a) {
  return unary(UnaryOp::sqrt, "sqrt", a);
}
Variable square(const Variable& a) {
  return unary(UnaryOp::square, "square", a);
}
Variable pow(const Variable& a, float exponent) {
  return unary(UnaryOp::pow, "pow", a, exponent);
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  BroadcastGeometry g;
  try {
    g = broadcast_geometry(grad.shape(), grad.shape(), shape);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("sum_to_shape: shape " + shape.str() +
                                " does not broadcast to the gradient's shape " +
                                grad.shape().str());
  }
  Tensor dense = grad.contiguous();
  Tensor out = Tensor::empty(shape);
  sum_reduce(out.data(), dense.data(), 1.0, g);
  return out;
}

}  // namespace dpm
