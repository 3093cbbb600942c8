#include "nn/lipschitz/operator_norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace dpm::lipschitz {
namespace {

double norm(const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return std::sqrt(sum);
}

void scale(float* x, int64_t n, double factor) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * factor);
}

void require_shape(const char* what, const Tensor& t, const Shape& expected) {
  if (!t.defined() || t.shape() != expected)
    throw std::invalid_argument(std::string("power_iterate: ") + what + " must have shape " +
                                expected.str() + ", got " +
                                (t.defined() ? t.shape().str() : std::string("undefined")));
  t.require_contiguous("power_iterate");
}

// Per spatial dimension of extent n: the largest number of (output, kernel tap) pairs reading
// one input element, and whether some output's window lies wholly inside [0, n).
struct AxisReads {
  int64_t max_multiplicity = 0;
  bool interior_window = false;
};

AxisReads axis_reads(int64_t n, int64_t kernel, int64_t stride, int64_t pad, int64_t out,
                     PaddingMode mode) {
  std::vector<int64_t> count(static_cast<size_t>(n), 0);
  AxisReads reads;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t first = o * stride - pad;
    reads.interior_window = reads.interior_window || (first >= 0 && first + kernel <= n);
    for (int64_t k = 0; k < kernel; ++k) {
      int64_t i = first + k;
      if (mode == PaddingMode::replicate) i = std::clamp<int64_t>(i, 0, n - 1);
      if (i >= 0 && i < n) ++count[static_cast<size_t>(i)];
    }
  }
  reads.max_multiplicity = *std::max_element(count.begin(), count.end());
  return reads;
}

}  // namespace

DenseMap::DenseMap(const Tensor& weight) {
  if (!weight.defined() || weight.ndim() < 2)
    throw std::invalid_argument("DenseMap: weight must have rank >= 2, got " +
                                (weight.defined() ? weight.shape().str() : std::string("none")));
  weight_ = weight.contiguous();
  rows_ = weight.size(0);
  cols_ = weight.numel() / rows_;
}

void DenseMap::apply(const float* x, float* y) const {
  const float* w = weight_.data();
  for (int64_t i = 0; i < rows_; ++i) {
    const float* row = w + i * cols_;
    double sum = 0.0;
    for (int64_t j = 0; j < cols_; ++j) sum += static_cast<double>(row[j]) * x[j];
    y[i] = static_cast<float>(sum);
  }
}

void DenseMap::adjoint(const float* y, float* x) const {
  const float* w = weight_.data();
  std::vector<double> sum(static_cast<size_t>(cols_), 0.0);
  for (int64_t i = 0; i < rows_; ++i) {
    const float* row = w + i * cols_;
    const double yi = y[i];
    for (int64_t j = 0; j < cols_; ++j) sum[static_cast<size_t>(j)] += row[j] * yi;
  }
  for (int64_t j = 0; j < cols_; ++j) x[j] = static_cast<float>(sum[static_cast<size_t>(j)]);
}

ConvMap::ConvMap(const Tensor& weight, const ConvGeometry& geometry) : geometry_(geometry) {
  geometry.validate("ConvMap");
  const int64_t kh = weight.defined() && weight.ndim() == 4 ? weight.size(2) : 1;
  const bool fits =
      weight.defined() && (weight.ndim() == 3 || weight.ndim() == 4) &&
      weight.size(0) == geometry.out_channels && weight.size(1) == geometry.in_channels &&
      kh == geometry.kernel_h && weight.size(-1) == geometry.kernel_w &&
      (weight.ndim() == 4 || (geometry.in_h == 1 && geometry.pad_h == 0 && geometry.stride_h == 1));
  if (!fits || geometry.batch != 1)
    throw std::invalid_argument("ConvMap: weight " +
                                (weight.defined() ? weight.shape().str() : std::string("none")) +
                                " does not fit the one-sample geometry (" + geometry.str() + ")");
  weight_ = weight.contiguous();
}

Shape ConvMap::input_shape() const {
  const ConvGeometry& g = geometry_;
  return weight_.ndim() == 3 ? Shape{g.in_channels, g.in_w} : Shape{g.in_channels, g.in_h, g.in_w};
}

Shape ConvMap::output_shape() const {
  const ConvGeometry& g = geometry_;
  return weight_.ndim() == 3 ? Shape{g.out_channels, g.out_w()}
                             : Shape{g.out_channels, g.out_h(), g.out_w()};
}

void ConvMap::apply(const float* x, float* y) const {
  conv2d_forward(y, x, weight_.data(), nullptr, geometry_);
}

void ConvMap::adjoint(const float* y, float* x) const {
  std::fill_n(x, input_shape().numel(), 0.0f);  // the kernel accumulates
  conv2d_backward_data(x, y, weight_.data(), geometry_);
}

ConvGeometry conv_geometry(const nn::Conv& conv, const Shape& input_shape) {
  const nn::ConvOptions& o = conv.options();
  const int rank = conv.spatial_dims() + 2;
  if (input_shape.ndim() != rank || input_shape[1] != o.in_channels)
    throw std::invalid_argument(
        "conv_geometry: a " + std::to_string(conv.spatial_dims()) + "-D conv with " +
        std::to_string(o.in_channels) + " input channels needs an input [B, " +
        std::to_string(o.in_channels) + (rank == 3 ? ", L]" : ", H, W]") + ", got " +
        input_shape.str() + (input_shape.ndim() == 0 ? " (the layer has not run yet)" : ""));
  ConvGeometry g;
  g.in_channels = o.in_channels;
  g.out_channels = o.out_channels;
  g.in_w = input_shape[rank - 1];
  g.kernel_w = o.kernel_size;
  g.stride_w = o.stride;
  g.pad_w = o.padding;
  g.padding = o.padding_mode;
  if (rank == 4) {
    g.in_h = input_shape[2];
    g.kernel_h = o.kernel_size;
    g.stride_h = o.stride;
    g.pad_h = o.padding;
  }
  g.validate("conv_geometry");
  return g;
}

double relative_change(double previous_sigma, double sigma) {
  return sigma > 0 ? std::abs(sigma - previous_sigma) / sigma : 0.0;
}

double extrapolated_error(double change, double previous_change) {
  const double rate = change / previous_change;
  return change == 0                                    ? 0.0
         : std::isfinite(previous_change) && rate < 1 ? change * rate / (1 - rate)
                                                        : std::numeric_limits<double>::infinity();
}

PowerIterationResult power_iterate(const LinearMap& map, Tensor& u, Tensor& v,
                                   const PowerIterationOptions& options) {
  require_shape("u", u, map.output_shape());
  require_shape("v", v, map.input_shape());
  if (options.steps < 0 || options.tolerance < 0 || options.max_steps < options.steps)
    throw std::invalid_argument(
        "power_iterate: need steps >= 0, tolerance >= 0 and max_steps >= steps, got steps " +
        std::to_string(options.steps) + ", tolerance " + std::to_string(options.tolerance) +
        ", max_steps " + std::to_string(options.max_steps));
  const int64_t n = v.numel(), m = u.numel();
  const double v_norm = norm(v.data(), n);
  if (!(v_norm > 0) || !std::isfinite(v_norm))
    throw std::invalid_argument("power_iterate: v must be a nonzero finite vector");
  scale(v.data(), n, 1.0 / v_norm);

  constexpr double kUnknown = std::numeric_limits<double>::infinity();
  PowerIterationResult result;
  result.relative_change = result.remaining_error = kUnknown;
  for (;;) {
    map.apply(v.data(), u.data());
    const double sigma = norm(u.data(), m);
    if (result.steps > 0) {
      const double previous_change = result.relative_change;
      result.relative_change = relative_change(result.sigma, sigma);
      result.remaining_error = extrapolated_error(result.relative_change, previous_change);
    }
    result.sigma = sigma;
    result.converged = options.tolerance > 0 && result.remaining_error <= options.tolerance;
    // A v = 0: v lies in the kernel (for a nonzero A a measure-zero start); nothing to follow.
    if (sigma == 0) break;
    scale(u.data(), m, 1.0 / sigma);
    const bool enough =
        result.steps >= options.steps &&
        (options.tolerance == 0 || result.converged || result.steps >= options.max_steps);
    if (enough) break;
    map.adjoint(u.data(), v.data());
    // <A^T u, v_old> = sigma > 0, so the new v is nonzero.
    scale(v.data(), n, 1.0 / norm(v.data(), n));
    ++result.steps;
  }
  return result;
}

ReshapedKernelBounds reshaped_kernel_bounds(const ConvGeometry& g) {
  g.validate("reshaped_kernel_bounds");
  const AxisReads h = axis_reads(g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.out_h(), g.padding);
  const AxisReads w = axis_reads(g.in_w, g.kernel_w, g.stride_w, g.pad_w, g.out_w(), g.padding);
  return {h.interior_window && w.interior_window,
          std::sqrt(static_cast<double>(h.max_multiplicity * w.max_multiplicity))};
}

}  // namespace dpm::lipschitz
