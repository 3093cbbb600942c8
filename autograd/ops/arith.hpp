#pragma once
// Elementwise arithmetic with NumPy broadcasting, scalar variants and unary math.
#include "autograd/variable.hpp"

namespace dpm {

Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable add_scalar(const Variable& a, float s);
Variable mul_scalar(const Variable& a, float s);

Variable neg(const Variable& a);
Variable exp(const Variable& a);
Variable log(const Variable& a);
Variable sqrt(const Variable& a);
Variable square(const Variable& a);
Variable pow(const Variable& a, float exponent);

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }
inline Variable operator+(const Variable& a, float s) { return add_scalar(a, s); }
inline Variable operator+(float s, const Variable& a) { return add_scalar(a, s); }
inline Variable operator-(const Variable& a, float s) { return add_scalar(a, -s); }
inline Variable operator-(float s, const Variable& a) { return add_scalar(neg(a), s); }
inline Variable operator*(const Variable& a, float s) { return mul_scalar(a, s); }
inline Variable operator*(float s, const Variable& a) { return mul_scalar(a, s); }
inline Variable operator/(const Variable& a, float s) { return mul_scalar(a, 1.0f / s); }
inline Variable operator/(float s, const Variable& a) { return mul_scalar(pow(a, -1.0f), s); }

// Sums a broadcast gradient back to `shape` (the reduction of broadcasting), in a fixed order.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace dpm
