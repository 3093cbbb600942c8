#pragma once
// Dense double-precision helpers shared by the GMM ground truth, the EM fit and the Jacobian norms
// and audit (diffusion/): row-major matrices in std::vector<double>, row norms, Cholesky factors,
// whitening, log-sum-exp and Tensor <-> double.
// BLAS/LAPACK calls here use OpenBLAS's threads, or one thread inside dpm::parallel_for.
#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"

namespace dpm::datasets {

// Rows of a 2-D float32 tensor [n, cols] as doubles; throws std::invalid_argument naming
// `caller` and `argument` unless x is 2-D with `cols` columns.
std::vector<double> to_double_rows(const Tensor& x, int64_t cols, const char* caller,
                                   const char* argument);
// [rows, cols] float32 tensor from row-major doubles (rounded to nearest).
Tensor to_tensor(const std::vector<double>& values, int64_t rows, int64_t cols);

// ||row|| and ||a - b|| for rows of n doubles, summed in order.
double row_norm(const double* row, int64_t n);
double row_distance(const double* a, const double* b, int64_t n);

// In-place lower Cholesky factor of the symmetric [n, n] matrix a (row-major; only the lower
// triangle is read and written, the strict upper triangle is zeroed). Returns false when a is not
// numerically positive definite; on success stores log det(a) in *log_det.
bool cholesky_lower(double* a, int64_t n, double* log_det);

// Whitened residuals of `rows` points x [rows, dim] against a Gaussian with mean [dim] and lower
// Cholesky factor chol [dim, dim] of its covariance: row i of w is L^{-1} (x_i - mean).
// One BLAS-3 triangular solve for all rows.
void whiten_rows(const double* x, int64_t rows, int64_t dim, const double* mean, const double* chol,
                 double* w);

// log N(x; mean, L L^T) from the squared norm of the whitened residual and log det(L L^T).
double gaussian_log_density(double whitened_sq_norm, double log_det, int64_t dim);

// The machine's dgemm rate at the current thread count, in GFLOP/s: an n x n x n product, best
// of 3 (what a double-precision kernel's achieved rate is set beside).
double dgemm_gflops(int64_t n);

// log sum_i exp(v_i), stable for any finite values (-inf entries allowed).
double log_sum_exp(const double* v, int64_t n);

// (a + a^T) / 2 in place: removes the rounding asymmetry of products like Q D Q^T.
void symmetrize(double* a, int64_t n);

}  // namespace dpm::datasets
