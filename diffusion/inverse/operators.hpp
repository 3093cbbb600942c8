#pragma once
// The measurement operators of docs/inverse.md: identity (denoising), inpainting by a mask,
// block-average super-resolution, Gaussian and uniform blur, and a random Gaussian
// compressed-sensing matrix. Every one of them knows its SVD, so pseudo_inverse and the spectral
// maps (apply_vt, apply_v, apply_ut, apply_u) work for all.
#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/inverse/measurement_operator.hpp"

namespace dpm::diffusion::inverse {

// A = I on R^n (denoising); U = V = I, s = 1.
class IdentityOperator final : public MeasurementOperator {
 public:
  explicit IdentityOperator(int64_t n);
  std::string name() const override { return "identity"; }
  int64_t input_dim() const override { return n_; }
  int64_t output_dim() const override { return n_; }
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;
  std::vector<double> pseudo_inverse(const std::vector<double>& y) override;
  bool has_svd() const override { return true; }
  std::vector<double> singular_values() const override;
  std::vector<double> apply_vt(const std::vector<double>& x) override;
  std::vector<double> apply_v(const std::vector<double>& z) override;
  std::vector<double> apply_ut(const std::vector<double>& y) override;
  std::vector<double> apply_u(const std::vector<double>& z) override;

 private:
  std::vector<double> copy(const std::vector<double>& v, const char* caller, bool input) const;
  int64_t n_;
};

// Inpainting: y holds the observed entries of x, in increasing index order (m = their count).
// A is a row selection, so A A^T = I: s = 1, U = I, A^+ = A^T (missing entries set to zero), and
// V^T x lists the observed entries first, then the missing ones (the null space).
class MaskOperator final : public MeasurementOperator {
 public:
  // observed[j] != 0 keeps entry j; at least one entry must be kept.
  MaskOperator(std::string name, const std::vector<uint8_t>& observed);
  // floor(missing_fraction * n) entries missing, chosen uniformly by a permutation drawn from
  // Rng(seed); missing_fraction in [0, 1).
  static MaskOperator random(int64_t n, double missing_fraction, uint64_t seed);
  // A box of box_height x box_width pixels missing in every channel, centred (its top-left corner
  // at ((H - box_height) / 2, (W - box_width) / 2), rounded down); it may not cover the image.
  static MaskOperator centred_box(ImageShape shape, int64_t box_height, int64_t box_width);

  std::string name() const override { return name_; }
  int64_t input_dim() const override { return n_; }
  int64_t output_dim() const override { return static_cast<int64_t>(observed_.size()); }
  const std::vector<int64_t>& observed_indices() const { return observed_; }
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;
  std::vector<double> pseudo_inverse(const std::vector<double>& y) override;
  bool has_svd() const override { return true; }
  std::vector<double> singular_values() const override;
  std::vector<double> apply_vt(const std::vector<double>& x) override;
  std::vector<double> apply_v(const std::vector<double>& z) override;
  std::vector<double> apply_ut(const std::vector<double>& y) override;
  std::vector<double> apply_u(const std::vector<double>& z) override;

 private:
  std::string name_;
  int64_t n_;
  std::vector<int64_t> observed_, missing_;
};

// Per channel of an image [C, H, W], Y = L X R^T with L [H', H] acting on rows and R [W', W] on
// columns (H' <= H, W' <= W): the image is mapped to [C, H', W']. The SVD is the Kronecker product
// of the two axes' SVDs (dense LAPACK on H x H and W x W, cheap): s_(i,j) = s_L,i s_R,j, and the
// spectral coordinates list, channel by channel, the H' W' pairs (i < H', j < W') first and the
// null-space pairs after them.
class SeparableImageOperator final : public MeasurementOperator {
 public:
  SeparableImageOperator(std::string name, ImageShape shape, std::vector<double> row_map,
                         int64_t out_height, std::vector<double> col_map, int64_t out_width);

  std::string name() const override { return name_; }
  int64_t input_dim() const override { return shape_.numel(); }
  int64_t output_dim() const override { return shape_.channels * out_height_ * out_width_; }
  ImageShape input_shape() const { return shape_; }
  ImageShape output_shape() const { return {shape_.channels, out_height_, out_width_}; }
  const std::vector<double>& row_map() const { return row_map_; }  // L [H', H], row-major
  const std::vector<double>& col_map() const { return col_map_; }  // R [W', W], row-major
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;
  bool has_svd() const override { return true; }
  std::vector<double> singular_values() const override;
  std::vector<double> apply_vt(const std::vector<double>& x) override;
  std::vector<double> apply_v(const std::vector<double>& z) override;
  std::vector<double> apply_ut(const std::vector<double>& y) override;
  std::vector<double> apply_u(const std::vector<double>& z) override;

 private:
  // Position of in-plane spectral pair p = i * W + j in the spectral vector of channel c.
  int64_t spectral_index(int64_t c, int64_t p) const;
  // [B, n] from plane order (channel, then pair i * W + j) into spectral order, or back.
  std::vector<double> reorder(const std::vector<double>& v, bool to_spectral) const;

  std::string name_;
  ImageShape shape_;
  int64_t out_height_, out_width_;
  std::vector<double> row_map_, col_map_;
  DenseSvd row_svd_, col_svd_;
  std::vector<int64_t> pair_rank_;  // [H W]: rank of pair p among the kept (or the null) pairs
};

// Super-resolution by block averaging: each output pixel is the mean of an r x r block,
// [C, H, W] -> [C, H / r, W / r] (L and R average r entries each, so the block gets 1 / r^2).
// r must divide H and W.
SeparableImageOperator make_super_resolution(ImageShape shape, int64_t factor);

// 9-tap separable blurs with zero boundary ("same" output size, pixels outside the image count as
// zero): taps k = -4..4 of exp(-k^2 / (2 sigma^2)) normalised to sum 1, or all 1/9. Both kernels
// are symmetric, so A = A^T. A blur's smallest singular values are tiny (about 1e-5 per axis for
// sigma 1.5 on 28 pixels), so A^+ y amplifies the noise without bound; with
// axis_singular_floor > 0 each axis map's singular values below it are set to zero (U diag(s) V^T
// rebuilt), as the DDRM and RED-Diff authors' code does with 3e-2, and A is that truncated blur.
constexpr int64_t kBlurTaps = 9;
SeparableImageOperator make_gaussian_blur(ImageShape shape, double sigma,
                                          double axis_singular_floor = 0.0);
SeparableImageOperator make_uniform_blur(ImageShape shape, double axis_singular_floor = 0.0);

// A dense row-major [m, n] matrix; the SVD is LAPACK's (dense_svd), computed at construction.
class DenseOperator final : public MeasurementOperator {
 public:
  DenseOperator(std::string name, std::vector<double> matrix, int64_t rows, int64_t cols);
  std::string name() const override { return name_; }
  int64_t input_dim() const override { return cols_; }
  int64_t output_dim() const override { return rows_; }
  const std::vector<double>& matrix() const { return matrix_; }
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;
  bool has_svd() const override { return true; }
  std::vector<double> singular_values() const override { return svd_.s; }
  std::vector<double> apply_vt(const std::vector<double>& x) override;
  std::vector<double> apply_v(const std::vector<double>& z) override;
  std::vector<double> apply_ut(const std::vector<double>& y) override;
  std::vector<double> apply_u(const std::vector<double>& z) override;

 private:
  std::string name_;
  std::vector<double> matrix_;
  int64_t rows_, cols_;
  DenseSvd svd_;
};

// Compressed sensing: an M x N matrix with i.i.d. N(0, 1 / M) entries drawn row-major from
// Rng(seed), so that E ||A x||^2 = ||x||^2.
DenseOperator make_compressed_sensing(int64_t rows, int64_t cols, uint64_t seed);

}  // namespace dpm::diffusion::inverse
