#include "autograd/kernels/elementwise.hpp"

#include <cmath>

namespace dpm {

void unary_forward(UnaryOp op, float* out, const float* inp, int64_t n, float param) {
  auto map = [&](auto f) { parallel_map(n, [&](int64_t i) { out[i] = f(inp[i]); }); };
  switch (op) {
    case UnaryOp::add_scalar:
      map([param](float x) { return x + param; });
      break;
    case UnaryOp::mul_scalar:
      map([param](float x) { return x * param; });
      break;
    case UnaryOp::neg:
      map([](float x) { return -x; });
      break;
    case UnaryOp::exp:
      map([](float x) { return std::exp(x); });
      break;
    case UnaryOp::log:
      map([](float x) { return std::log(x); });
      break;
    case UnaryOp::sqrt:
      map([](float x) { return std::sqrt(x); });
      break;
    case UnaryOp::square:
      map([](float x) { return x * x; });
      break;
    case UnaryOp::pow:
      map([param](float x) { return std::pow(x, param); });
      break;
  }
}

void unary_backward(UnaryOp op, float* dinp, const float* dout, const float* inp, const float* out,
                    int64_t n, float param) {
  // f(g, x, y) is the contribution of output gradient g at input x with forward value y.
  auto accumulate = [&](auto f) {
    parallel_map(n, [&](int64_t i) { dinp[i] += f(dout[i], inp[i], out[i]); });
  };
  switch (op) {
    case UnaryOp::add_scalar:
      accumulate([](float g, float, float) { return g; });
      break;
    case UnaryOp::mul_scalar:
      accumulate([param](float g, float, float) { return g * param; });
      break;
    case UnaryOp::neg:
      accumulate([](float g, float, float) { return -g; });
      break;
    case UnaryOp::exp:
      accumulate([](float g, float, float y) { return g * y; });
      break;
    case UnaryOp::log:
      accumulate([](float g, float x, float) { return g / x; });
      break;
    case UnaryOp::sqrt:
      accumulate([](float g, float, float y) { return g * 0.5f / y; });
      break;
    case UnaryOp::square:
      accumulate([](float g, float x, float) { return g * 2.0f * x; });
      break;
    case UnaryOp::pow:
      // x^0 is constant; without the special case 0 * x^-1 would give NaN at x = 0.
      accumulate([param](float g, float x, float) {
        return param == 0.0f ? 0.0f : g * param * std::pow(x, param - 1.0f);
      });
      break;
  }
}

}  // namespace dpm
