#include "diffusion/inverse/operators.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "autograd/rng.hpp"

namespace dpm::diffusion::inverse {
namespace {

// out [rows, right_cols] = x [rows, inner] op(matrix), op(matrix) = matrix (stored
// [inner, right_cols]) or matrix^T (stored [right_cols, inner]).
std::vector<double> rows_times(const std::vector<double>& x, int64_t rows, int64_t inner,
                               const std::vector<double>& matrix, bool transpose,
                               int64_t right_cols) {
  std::vector<double> out(static_cast<size_t>(rows * right_cols));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasTrans : CblasNoTrans,
              static_cast<int>(rows), static_cast<int>(right_cols), static_cast<int>(inner), 1.0,
              x.data(), static_cast<int>(inner), matrix.data(),
              static_cast<int>(transpose ? inner : right_cols), 0.0, out.data(),
              static_cast<int>(right_cols));
  return out;
}

// One axis factor of a separable map as op(M): M stored row-major [stored_rows, stored_cols],
// used transposed or not.
struct AxisFactor {
  const std::vector<double>& stored;
  int64_t stored_rows, stored_cols;
  bool transpose;
  int64_t rows() const { return transpose ? stored_cols : stored_rows; }
  int64_t cols() const { return transpose ? stored_rows : stored_cols; }
};

// out [left.rows(), right.rows()] = op(left) plane [left.cols(), right.cols()] op(right)^T.
void map_plane(const double* plane, const AxisFactor& left, const AxisFactor& right, double* out) {
  const int lr = static_cast<int>(left.rows()), h = static_cast<int>(left.cols());
  const int rr = static_cast<int>(right.rows()), w = static_cast<int>(right.cols());
  std::vector<double> half(static_cast<size_t>(lr) * w);
  cblas_dgemm(CblasRowMajor, left.transpose ? CblasTrans : CblasNoTrans, CblasNoTrans, lr, w, h,
              1.0, left.stored.data(), static_cast<int>(left.stored_cols), plane, w, 0.0,
              half.data(), w);
  // half op(right)^T: op(right)^T is right^T when op(right) = right, right itself otherwise.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, right.transpose ? CblasNoTrans : CblasTrans, lr, rr, w,
              1.0, half.data(), w, right.stored.data(), static_cast<int>(right.stored_cols), 0.0,
              out, rr);
}

// Every plane of `in` through map_plane: [planes, left.cols(), right.cols()] ->
// [planes, left.rows(), right.rows()].
std::vector<double> map_planes(const std::vector<double>& in, int64_t planes,
                               const AxisFactor& left, const AxisFactor& right) {
  const int64_t in_plane = left.cols() * right.cols(), out_plane = left.rows() * right.rows();
  std::vector<double> out(static_cast<size_t>(planes * out_plane));
  for (int64_t p = 0; p < planes; ++p)
    map_plane(in.data() + p * in_plane, left, right, out.data() + p * out_plane);
  return out;
}

void require_positive(int64_t value, const char* caller, const char* field) {
  if (value < 1)
    throw std::invalid_argument(std::string(caller) + ": " + field + " must be >= 1, got " +
                                std::to_string(value));
}

void require_image(ImageShape shape, const char* caller) {
  if (shape.channels < 1 || shape.height < 1 || shape.width < 1)
    throw std::invalid_argument(std::string(caller) + ": shape must have positive sizes, got " +
                                shape.str());
}

}  // namespace

// ---------------------------------------------------------------------------------- identity

IdentityOperator::IdentityOperator(int64_t n) : n_(n) {
  require_positive(n, "IdentityOperator", "n");
}

std::vector<double> IdentityOperator::copy(const std::vector<double>& v, const char* caller,
                                           bool input) const {
  if (input)
    check_input(v, caller);
  else
    check_output(v, caller);
  return v;
}

std::vector<double> IdentityOperator::apply(const std::vector<double>& x) {
  return copy(x, "IdentityOperator::apply", true);
}
std::vector<double> IdentityOperator::adjoint(const std::vector<double>& y) {
  return copy(y, "IdentityOperator::adjoint", false);
}
std::vector<double> IdentityOperator::pseudo_inverse(const std::vector<double>& y) {
  return copy(y, "IdentityOperator::pseudo_inverse", false);
}
std::vector<double> IdentityOperator::singular_values() const {
  return std::vector<double>(static_cast<size_t>(n_), 1.0);
}
std::vector<double> IdentityOperator::apply_vt(const std::vector<double>& x) {
  return copy(x, "IdentityOperator::apply_vt", true);
}
std::vector<double> IdentityOperator::apply_v(const std::vector<double>& z) {
  return copy(z, "IdentityOperator::apply_v", true);
}
std::vector<double> IdentityOperator::apply_ut(const std::vector<double>& y) {
  return copy(y, "IdentityOperator::apply_ut", false);
}
std::vector<double> IdentityOperator::apply_u(const std::vector<double>& z) {
  return copy(z, "IdentityOperator::apply_u", false);
}

// -------------------------------------------------------------------------------------- mask

MaskOperator::MaskOperator(std::string name, const std::vector<uint8_t>& observed)
    : name_(std::move(name)), n_(static_cast<int64_t>(observed.size())) {
  for (int64_t j = 0; j < n_; ++j) (observed[j] ? observed_ : missing_).push_back(j);
  if (observed_.empty())
    throw std::invalid_argument("MaskOperator: observed must keep at least one of its " +
                                std::to_string(n_) + " entries");
}

MaskOperator MaskOperator::random(int64_t n, double missing_fraction, uint64_t seed) {
  require_positive(n, "MaskOperator::random", "n");
  if (!(missing_fraction >= 0.0 && missing_fraction < 1.0))
    throw std::invalid_argument("MaskOperator::random: missing_fraction must be in [0, 1), got " +
                                std::to_string(missing_fraction));
  const auto missing = static_cast<int64_t>(std::floor(missing_fraction * static_cast<double>(n)));
  Rng rng(seed);
  const std::vector<int64_t> order = rng.permutation(n);
  std::vector<uint8_t> observed(static_cast<size_t>(n), 1);
  for (int64_t i = 0; i < missing; ++i) observed[order[i]] = 0;
  return MaskOperator(
      "inpainting (random, " + std::to_string(missing) + " of " + std::to_string(n) + " missing)",
      observed);
}

MaskOperator MaskOperator::centred_box(ImageShape shape, int64_t box_height, int64_t box_width) {
  require_image(shape, "MaskOperator::centred_box");
  if (box_height < 1 || box_height > shape.height || box_width < 1 || box_width > shape.width ||
      (box_height == shape.height && box_width == shape.width))
    throw std::invalid_argument("MaskOperator::centred_box: box_height x box_width must fit in " +
                                shape.str() + " without covering it, got " +
                                std::to_string(box_height) + " x " + std::to_string(box_width));
  const int64_t top = (shape.height - box_height) / 2, left = (shape.width - box_width) / 2;
  std::vector<uint8_t> observed(static_cast<size_t>(shape.numel()), 1);
  for (int64_t c = 0; c < shape.channels; ++c)
    for (int64_t i = top; i < top + box_height; ++i)
      for (int64_t j = left; j < left + box_width; ++j)
        observed[(c * shape.height + i) * shape.width + j] = 0;
  return MaskOperator("inpainting (centred " + std::to_string(box_height) + "x" +
                          std::to_string(box_width) + " box of " + shape.str() + ")",
                      observed);
}

std::vector<double> MaskOperator::apply(const std::vector<double>& x) {
  check_input(x, "MaskOperator::apply");
  const int64_t m = output_dim();
  std::vector<double> y(static_cast<size_t>(batch() * m));
  for (int64_t b = 0; b < batch(); ++b)
    for (int64_t i = 0; i < m; ++i) y[b * m + i] = x[b * n_ + observed_[i]];
  return y;
}

std::vector<double> MaskOperator::adjoint(const std::vector<double>& y) {
  check_output(y, "MaskOperator::adjoint");
  const int64_t m = output_dim();
  std::vector<double> x(static_cast<size_t>(batch() * n_), 0.0);
  for (int64_t b = 0; b < batch(); ++b)
    for (int64_t i = 0; i < m; ++i) x[b * n_ + observed_[i]] = y[b * m + i];
  return x;
}

std::vector<double> MaskOperator::pseudo_inverse(const std::vector<double>& y) {
  return adjoint(y);
}

std::vector<double> MaskOperator::singular_values() const {
  return std::vector<double>(observed_.size(), 1.0);
}

std::vector<double> MaskOperator::apply_vt(const std::vector<double>& x) {
  check_input(x, "MaskOperator::apply_vt");
  const int64_t m = output_dim();
  std::vector<double> z(x.size());
  for (int64_t b = 0; b < batch(); ++b) {
    for (int64_t i = 0; i < m; ++i) z[b * n_ + i] = x[b * n_ + observed_[i]];
    for (size_t t = 0; t < missing_.size(); ++t) z[b * n_ + m + t] = x[b * n_ + missing_[t]];
  }
  return z;
}

std::vector<double> MaskOperator::apply_v(const std::vector<double>& z) {
  check_input(z, "MaskOperator::apply_v");
  const int64_t m = output_dim();
  std::vector<double> x(z.size());
  for (int64_t b = 0; b < batch(); ++b) {
    for (int64_t i = 0; i < m; ++i) x[b * n_ + observed_[i]] = z[b * n_ + i];
    for (size_t t = 0; t < missing_.size(); ++t) x[b * n_ + missing_[t]] = z[b * n_ + m + t];
  }
  return x;
}

std::vector<double> MaskOperator::apply_ut(const std::vector<double>& y) {
  check_output(y, "MaskOperator::apply_ut");
  return y;
}
std::vector<double> MaskOperator::apply_u(const std::vector<double>& z) {
  check_output(z, "MaskOperator::apply_u");
  return z;
}

// ------------------------------------------------------------------------------- separable

SeparableImageOperator::SeparableImageOperator(std::string name, ImageShape shape,
                                               std::vector<double> row_map, int64_t out_height,
                                               std::vector<double> col_map, int64_t out_width)
    : name_(std::move(name)),
      shape_(shape),
      out_height_(out_height),
      out_width_(out_width),
      row_map_(std::move(row_map)),
      col_map_(std::move(col_map)) {
  require_image(shape, "SeparableImageOperator");
  if (out_height < 1 || out_height > shape.height || out_width < 1 || out_width > shape.width)
    throw std::invalid_argument("SeparableImageOperator: out_height x out_width must be at most " +
                                std::to_string(shape.height) + " x " + std::to_string(shape.width) +
                                ", got " + std::to_string(out_height) + " x " +
                                std::to_string(out_width));
  row_svd_ = dense_svd(row_map_, out_height, shape.height, "SeparableImageOperator (row_map)");
  col_svd_ = dense_svd(col_map_, out_width, shape.width, "SeparableImageOperator (col_map)");
  pair_rank_.resize(static_cast<size_t>(shape.height * shape.width));
  int64_t kept = 0, null = 0;
  for (int64_t i = 0; i < shape.height; ++i)
    for (int64_t j = 0; j < shape.width; ++j)
      pair_rank_[i * shape.width + j] = (i < out_height && j < out_width) ? kept++ : null++;
}

int64_t SeparableImageOperator::spectral_index(int64_t c, int64_t p) const {
  const int64_t plane = shape_.height * shape_.width, kept = out_height_ * out_width_;
  const int64_t i = p / shape_.width, j = p % shape_.width;
  if (i < out_height_ && j < out_width_) return c * kept + pair_rank_[p];
  return shape_.channels * kept + c * (plane - kept) + pair_rank_[p];
}

std::vector<double> SeparableImageOperator::apply(const std::vector<double>& x) {
  check_input(x, "SeparableImageOperator::apply");
  return map_planes(x, batch() * shape_.channels, {row_map_, out_height_, shape_.height, false},
                    {col_map_, out_width_, shape_.width, false});
}

std::vector<double> SeparableImageOperator::adjoint(const std::vector<double>& y) {
  check_output(y, "SeparableImageOperator::adjoint");
  // L^T Y R: both factors transposed.
  return map_planes(y, batch() * shape_.channels, {row_map_, out_height_, shape_.height, true},
                    {col_map_, out_width_, shape_.width, true});
}

std::vector<double> SeparableImageOperator::singular_values() const {
  std::vector<double> s(static_cast<size_t>(output_dim()));
  for (int64_t c = 0; c < shape_.channels; ++c)
    for (int64_t i = 0; i < out_height_; ++i)
      for (int64_t j = 0; j < out_width_; ++j)
        s[(c * out_height_ + i) * out_width_ + j] = row_svd_.s[i] * col_svd_.s[j];
  return s;
}

std::vector<double> SeparableImageOperator::reorder(const std::vector<double>& v,
                                                    bool to_spectral) const {
  const int64_t n = input_dim(), in_plane = shape_.height * shape_.width;
  std::vector<double> out(v.size());
  for (int64_t b = 0; b < batch(); ++b)
    for (int64_t c = 0; c < shape_.channels; ++c)
      for (int64_t p = 0; p < in_plane; ++p) {
        const int64_t plane_at = (b * shape_.channels + c) * in_plane + p,
                      spectral_at = b * n + spectral_index(c, p);
        if (to_spectral)
          out[spectral_at] = v[plane_at];
        else
          out[plane_at] = v[spectral_at];
      }
  return out;
}

std::vector<double> SeparableImageOperator::apply_vt(const std::vector<double>& x) {
  check_input(x, "SeparableImageOperator::apply_vt");
  // V^T X per plane is V_L^T X V_R = Vt_L X Vt_R^T.
  return reorder(
      map_planes(x, batch() * shape_.channels, {row_svd_.vt, shape_.height, shape_.height, false},
                 {col_svd_.vt, shape_.width, shape_.width, false}),
      true);
}

std::vector<double> SeparableImageOperator::apply_v(const std::vector<double>& z) {
  check_input(z, "SeparableImageOperator::apply_v");
  return map_planes(reorder(z, false), batch() * shape_.channels,
                    {row_svd_.vt, shape_.height, shape_.height, true},
                    {col_svd_.vt, shape_.width, shape_.width, true});
}

std::vector<double> SeparableImageOperator::apply_ut(const std::vector<double>& y) {
  check_output(y, "SeparableImageOperator::apply_ut");
  // U^T Y per plane is U_L^T Y U_R; the kept pairs are in the plane's own row-major order.
  return map_planes(y, batch() * shape_.channels, {row_svd_.u, out_height_, out_height_, true},
                    {col_svd_.u, out_width_, out_width_, true});
}

std::vector<double> SeparableImageOperator::apply_u(const std::vector<double>& z) {
  check_output(z, "SeparableImageOperator::apply_u");
  return map_planes(z, batch() * shape_.channels, {row_svd_.u, out_height_, out_height_, false},
                    {col_svd_.u, out_width_, out_width_, false});
}

namespace {

// [size / factor, size]: row i averages entries i * factor .. (i + 1) * factor - 1.
std::vector<double> block_average(int64_t size, int64_t factor) {
  std::vector<double> map(static_cast<size_t>(size / factor * size), 0.0);
  for (int64_t j = 0; j < size; ++j)
    map[(j / factor) * size + j] = 1.0 / static_cast<double>(factor);
  return map;
}

// [size, size] banded Toeplitz matrix of the centred taps, zero outside the axis.
std::vector<double> blur_axis(int64_t size, const std::vector<double>& taps) {
  const int64_t radius = kBlurTaps / 2;
  std::vector<double> map(static_cast<size_t>(size * size), 0.0);
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = std::max<int64_t>(0, i - radius); j <= std::min(size - 1, i + radius); ++j)
      map[i * size + j] = taps[j - i + radius];
  return map;
}

// The axis map with its singular values below `floor` set to zero, U diag(s) V^T rebuilt: the
// blur the DDRM and RED-Diff authors' code measures with, whose pseudo-inverse stays bounded.
std::vector<double> truncate_axis(const std::vector<double>& map, int64_t size, double floor,
                                  const char* caller) {
  DenseSvd svd = dense_svd(map, size, size, caller);
  const double largest = *std::max_element(svd.s.begin(), svd.s.end());
  if (floor >= largest)
    throw std::invalid_argument(std::string(caller) + ": axis_singular_floor " +
                                std::to_string(floor) + " would zero every singular value (the " +
                                "largest is " + std::to_string(largest) + ")");
  std::vector<double> rebuilt(static_cast<size_t>(size * size), 0.0);
  for (int64_t k = 0; k < size; ++k) {
    if (svd.s[k] < floor) continue;
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j)
        rebuilt[i * size + j] += svd.u[i * size + k] * svd.s[k] * svd.vt[k * size + j];
  }
  return rebuilt;
}

SeparableImageOperator make_blur(std::string name, ImageShape shape,
                                 const std::vector<double>& taps, double axis_singular_floor,
                                 const char* caller) {
  require_image(shape, caller);
  if (!(axis_singular_floor >= 0.0) || !std::isfinite(axis_singular_floor))
    throw std::invalid_argument(std::string(caller) +
                                ": axis_singular_floor must be >= 0 and finite, got " +
                                std::to_string(axis_singular_floor));
  auto axis = [&](int64_t size) {
    std::vector<double> map = blur_axis(size, taps);
    return axis_singular_floor > 0.0 ? truncate_axis(map, size, axis_singular_floor, caller) : map;
  };
  if (axis_singular_floor > 0.0)
    name += ", axis singular values < " + std::to_string(axis_singular_floor) + " zeroed";
  return SeparableImageOperator(std::move(name), shape, axis(shape.height), shape.height,
                                axis(shape.width), shape.width);
}

}  // namespace

SeparableImageOperator make_super_resolution(ImageShape shape, int64_t factor) {
  require_image(shape, "make_super_resolution");
  if (factor < 1 || shape.height % factor != 0 || shape.width % factor != 0)
    throw std::invalid_argument(
        "make_super_resolution: factor r must be >= 1 and divide H and W "
        "of " +
        shape.str() + ", got r = " + std::to_string(factor));
  return SeparableImageOperator("super-resolution x" + std::to_string(factor), shape,
                                block_average(shape.height, factor), shape.height / factor,
                                block_average(shape.width, factor), shape.width / factor);
}

SeparableImageOperator make_gaussian_blur(ImageShape shape, double sigma,
                                          double axis_singular_floor) {
  if (!(sigma > 0.0) || !std::isfinite(sigma))
    throw std::invalid_argument("make_gaussian_blur: sigma must be positive and finite, got " +
                                std::to_string(sigma));
  std::vector<double> taps(static_cast<size_t>(kBlurTaps));
  double sum = 0.0;
  for (int64_t k = 0; k < kBlurTaps; ++k) {
    const double offset = static_cast<double>(k - kBlurTaps / 2);
    taps[k] = std::exp(-offset * offset / (2.0 * sigma * sigma));
    sum += taps[k];
  }
  for (double& t : taps) t /= sum;
  return make_blur("gaussian blur (sigma " + std::to_string(sigma) + ")", shape, taps,
                   axis_singular_floor, "make_gaussian_blur");
}

SeparableImageOperator make_uniform_blur(ImageShape shape, double axis_singular_floor) {
  const std::vector<double> taps(static_cast<size_t>(kBlurTaps), 1.0 / kBlurTaps);
  return make_blur("uniform blur", shape, taps, axis_singular_floor, "make_uniform_blur");
}

// ------------------------------------------------------------------------------------ dense

DenseOperator::DenseOperator(std::string name, std::vector<double> matrix, int64_t rows,
                             int64_t cols)
    : name_(std::move(name)), matrix_(std::move(matrix)), rows_(rows), cols_(cols) {
  svd_ = dense_svd(matrix_, rows, cols, "DenseOperator");
}

std::vector<double> DenseOperator::apply(const std::vector<double>& x) {
  check_input(x, "DenseOperator::apply");
  return rows_times(x, batch(), cols_, matrix_, true, rows_);
}
std::vector<double> DenseOperator::adjoint(const std::vector<double>& y) {
  check_output(y, "DenseOperator::adjoint");
  return rows_times(y, batch(), rows_, matrix_, false, cols_);
}
// Row-wise, V^T x is x^T V = x^T Vt^T and V z is z^T Vt; likewise for U.
std::vector<double> DenseOperator::apply_vt(const std::vector<double>& x) {
  check_input(x, "DenseOperator::apply_vt");
  return rows_times(x, batch(), cols_, svd_.vt, true, cols_);
}
std::vector<double> DenseOperator::apply_v(const std::vector<double>& z) {
  check_input(z, "DenseOperator::apply_v");
  return rows_times(z, batch(), cols_, svd_.vt, false, cols_);
}
std::vector<double> DenseOperator::apply_ut(const std::vector<double>& y) {
  check_output(y, "DenseOperator::apply_ut");
  return rows_times(y, batch(), rows_, svd_.u, false, rows_);
}
std::vector<double> DenseOperator::apply_u(const std::vector<double>& z) {
  check_output(z, "DenseOperator::apply_u");
  return rows_times(z, batch(), rows_, svd_.u, true, rows_);
}

DenseOperator make_compressed_sensing(int64_t rows, int64_t cols, uint64_t seed) {
  require_positive(rows, "make_compressed_sensing", "rows (M)");
  require_positive(cols, "make_compressed_sensing", "cols (N)");
  Rng rng(seed);
  const double scale = 1.0 / std::sqrt(static_cast<double>(rows));
  std::vector<double> matrix(static_cast<size_t>(rows * cols));
  for (double& v : matrix) v = scale * rng.normal();
  return DenseOperator("compressed sensing " + std::to_string(rows) + "x" + std::to_string(cols),
                       std::move(matrix), rows, cols);
}

}  // namespace dpm::diffusion::inverse
