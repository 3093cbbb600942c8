#include "diffusion/inverse/measurement_operator.hpp"

#include <lapacke.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace dpm::diffusion::inverse {

std::string ImageShape::str() const {
  std::string text = "[";
  text += std::to_string(channels) + ", " + std::to_string(height) + ", ";
  text += std::to_string(width) + "]";
  return text;
}

void MeasurementOperator::set_batch(int64_t rows) {
  if (rows < 1)
    throw std::invalid_argument("MeasurementOperator::set_batch: rows must be >= 1, got " +
                                std::to_string(rows));
  batch_ = rows;
}

std::vector<double> MeasurementOperator::pseudo_inverse(const std::vector<double>& y) {
  check_output(y, "MeasurementOperator::pseudo_inverse");
  const int64_t m = output_dim(), n = input_dim();
  const std::vector<double> s = singular_values();
  const std::vector<double> spectral_y = apply_ut(y);
  const double top = s.empty() ? 0.0 : *std::max_element(s.begin(), s.end());
  const double cutoff =
      static_cast<double>(std::max(m, n)) * std::numeric_limits<double>::epsilon() * top;
  std::vector<double> spectral_x(static_cast<size_t>(batch() * n), 0.0);
  for (int64_t b = 0; b < batch(); ++b)
    for (size_t j = 0; j < s.size(); ++j)
      if (s[j] > cutoff) spectral_x[b * n + j] = spectral_y[b * m + j] / s[j];
  return apply_v(spectral_x);
}

void MeasurementOperator::throw_no_svd(const char* caller) const {
  throw std::invalid_argument(std::string(caller) + ": operator '" + name() +
                              "' has no known SVD (has_svd() is false)");
}

std::vector<double> MeasurementOperator::singular_values() const {
  throw_no_svd("MeasurementOperator::singular_values");
}
std::vector<double> MeasurementOperator::apply_vt(const std::vector<double>&) {
  throw_no_svd("MeasurementOperator::apply_vt");
}
std::vector<double> MeasurementOperator::apply_v(const std::vector<double>&) {
  throw_no_svd("MeasurementOperator::apply_v");
}
std::vector<double> MeasurementOperator::apply_ut(const std::vector<double>&) {
  throw_no_svd("MeasurementOperator::apply_ut");
}
std::vector<double> MeasurementOperator::apply_u(const std::vector<double>&) {
  throw_no_svd("MeasurementOperator::apply_u");
}

std::vector<double> dense_matrix(MeasurementOperator& op) {
  const int64_t m = op.output_dim(), n = op.input_dim();
  ScopedBatch scope(op, n);
  std::vector<double> basis(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) basis[j * n + j] = 1.0;
  // Row j of the batch is A e_j, the matrix's column j.
  const std::vector<double> columns = op.apply(basis);
  std::vector<double> a(static_cast<size_t>(m * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) a[i * n + j] = columns[j * m + i];
  return a;
}

DenseSvd dense_svd(std::vector<double> a, int64_t rows, int64_t cols, const char* caller) {
  if (rows < 1 || cols < 1 || static_cast<int64_t>(a.size()) != rows * cols)
    throw std::invalid_argument(std::string(caller) + ": dense_svd needs a [" +
                                std::to_string(rows) + ", " + std::to_string(cols) +
                                "] matrix with positive sizes, got " + std::to_string(a.size()) +
                                " values");
  DenseSvd svd;
  svd.rows = rows;
  svd.cols = cols;
  svd.u.resize(static_cast<size_t>(rows * rows));
  svd.s.resize(static_cast<size_t>(std::min(rows, cols)));
  svd.vt.resize(static_cast<size_t>(cols * cols));
  const auto m = static_cast<lapack_int>(rows), n = static_cast<lapack_int>(cols);
  if (LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', m, n, a.data(), n, svd.s.data(), svd.u.data(), m,
                     svd.vt.data(), n) != 0)
    throw std::invalid_argument(std::string(caller) + ": LAPACK dgesdd did not converge");
  return svd;
}

}  // namespace dpm::diffusion::inverse
