#pragma once
// The one linear-operator interface of dpmlab: a batch of B linear maps R^n -> R^m (B = 1 for a
// single map), each row its own map, acting on row-major [B, n] and [B, m] double vectors.
// A layer's weight as a matrix or a convolution (nn/lipschitz/operator_norm.hpp), the per-sample
// Jacobians of a denoiser (diffusion/jacobian.hpp) and measurement operators all implement it, and
// one solver, nn/lipschitz's top_singular_values, measures their norms.
//
// apply and adjoint are not const: an operator may build state on first use (a network's graph,
// an oracle's Hessians).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dpm {

class LinearOperator {
 public:
  virtual ~LinearOperator() = default;
  virtual int64_t batch() const { return 1; }
  virtual int64_t input_dim() const = 0;   // n
  virtual int64_t output_dim() const = 0;  // m
  virtual std::vector<double> apply(const std::vector<double>& x) = 0;    // [B, n] -> A x [B, m]
  virtual std::vector<double> adjoint(const std::vector<double>& y) = 0;  // [B, m] -> A^T y [B, n]

 protected:
  // Throw std::invalid_argument naming `caller` unless the vector holds B * n (B * m) values.
  void check_input(const std::vector<double>& x, const char* caller) const {
    check_size(x, input_dim(), caller);
  }
  void check_output(const std::vector<double>& y, const char* caller) const {
    check_size(y, output_dim(), caller);
  }

 private:
  void check_size(const std::vector<double>& v, int64_t row_size, const char* caller) const {
    if (static_cast<int64_t>(v.size()) != batch() * row_size)
      throw std::invalid_argument(std::string(caller) + ": expected " + std::to_string(batch()) +
                                  " x " + std::to_string(row_size) + " values, got " +
                                  std::to_string(v.size()));
  }
};

}  // namespace dpm
