#pragma once
// MeasurementOperator: a linear forward model y = A x of an inverse problem (docs/inverse.md), the
// dpm::LinearOperator interface plus what restoration methods need beyond A and A^T: the
// pseudo-inverse and, where known, the SVD.
//
// Batching: every row of a batch goes through the same A. batch() is the row count the caller set
// with set_batch (1 until then); apply, adjoint and the rest take [batch(), n] or [batch(), m]
// row-major doubles and throw std::invalid_argument on any other size.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/linear_operator.hpp"

namespace dpm::diffusion::inverse {

// An image [C, H, W] flattened row-major (channel, then row, then column).
struct ImageShape {
  int64_t channels = 1, height = 1, width = 1;
  int64_t numel() const { return channels * height * width; }
  std::string str() const;  // "[C, H, W]"
};

class MeasurementOperator : public LinearOperator {
 public:
  int64_t batch() const override { return batch_; }
  void set_batch(int64_t rows);  // rows >= 1
  virtual std::string name() const = 0;

  // Minimum-norm least-squares solution A^+ y: [B, m] -> [B, n]. The default goes through the
  // SVD, V_k diag(1 / s) U_k^T y, with singular values at or below max(m, n) * eps * max(s)
  // counted as zero (the usual numerical-rank cutoff); operators with a closed form override it.
  virtual std::vector<double> pseudo_inverse(const std::vector<double>& y);

  // SVD A = U_k diag(s) V_k^T: U [m, m] and V [n, n] orthogonal, U_k and V_k their first
  // k = min(m, n) columns, s [k] non-negative and in no particular order. So apply_vt gives a
  // row's n spectral coordinates, the first k of which A scales by s and the rest of which span
  // the null space. The defaults throw: operators without a known SVD say so by has_svd().
  virtual bool has_svd() const { return false; }
  virtual std::vector<double> singular_values() const;                 // [k]
  virtual std::vector<double> apply_vt(const std::vector<double>& x);  // [B, n] -> V^T x
  virtual std::vector<double> apply_v(const std::vector<double>& z);   // [B, n] -> V z
  virtual std::vector<double> apply_ut(const std::vector<double>& y);  // [B, m] -> U^T y
  virtual std::vector<double> apply_u(const std::vector<double>& z);   // [B, m] -> U z

 protected:
  [[noreturn]] void throw_no_svd(const char* caller) const;

 private:
  int64_t batch_ = 1;
};

// Sets an operator's batch for a scope and restores the previous one on leaving it (also when an
// exception leaves it).
class ScopedBatch {
 public:
  ScopedBatch(MeasurementOperator& op, int64_t rows) : op_(op), saved_(op.batch()) {
    op.set_batch(rows);
  }
  ~ScopedBatch() { op_.set_batch(saved_); }
  ScopedBatch(const ScopedBatch&) = delete;
  ScopedBatch& operator=(const ScopedBatch&) = delete;

 private:
  MeasurementOperator& op_;
  int64_t saved_;
};

// A as a dense row-major [m, n] matrix, built column by column (A e_j for every j, as one batch
// of n rows). Restores the operator's batch afterwards.
std::vector<double> dense_matrix(MeasurementOperator& op);

// Full SVD of a dense row-major [m, n] matrix by LAPACK dgesdd: u [m, m], s [min(m, n)],
// vt [n, n] (V^T), all row-major. Throws std::invalid_argument naming `caller` if LAPACK fails.
struct DenseSvd {
  int64_t rows = 0, cols = 0;
  std::vector<double> u, s, vt;
};
DenseSvd dense_svd(std::vector<double> a, int64_t rows, int64_t cols, const char* caller);

}  // namespace dpm::diffusion::inverse
