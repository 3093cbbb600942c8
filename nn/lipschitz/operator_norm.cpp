#include "nn/lipschitz/operator_norm.hpp"

#include "nn/lipschitz/singular_values.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace dpm::lipschitz {
namespace {

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

std::vector<double> DenseMap::apply(const std::vector<double>& x) {
  check_input(x, "DenseMap::apply");
  const float* w = weight_.data();
  std::vector<double> y(static_cast<size_t>(rows_));
  for (int64_t i = 0; i < rows_; ++i) {
    const float* row = w + i * cols_;
    double sum = 0.0;
    for (int64_t j = 0; j < cols_; ++j) sum += row[j] * x[j];
    y[i] = sum;
  }
  return y;
}

std::vector<double> DenseMap::adjoint(const std::vector<double>& y) {
  check_output(y, "DenseMap::adjoint");
  const float* w = weight_.data();
  std::vector<double> x(static_cast<size_t>(cols_), 0.0);
  for (int64_t i = 0; i < rows_; ++i) {
    const float* row = w + i * cols_;
    for (int64_t j = 0; j < cols_; ++j) x[j] += row[j] * y[i];
  }
  return x;
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

std::vector<double> ConvMap::apply(const std::vector<double>& x) {
  check_input(x, "ConvMap::apply");
  const std::vector<float> input(x.begin(), x.end());
  std::vector<float> output(static_cast<size_t>(output_dim()));
  conv2d_forward(output.data(), input.data(), weight_.data(), nullptr, geometry_);
  return {output.begin(), output.end()};
}

std::vector<double> ConvMap::adjoint(const std::vector<double>& y) {
  check_output(y, "ConvMap::adjoint");
  const std::vector<float> output(y.begin(), y.end());
  std::vector<float> input(static_cast<size_t>(input_dim()), 0.0f);  // the kernel accumulates
  conv2d_backward_data(input.data(), output.data(), weight_.data(), geometry_);
  return {input.begin(), input.end()};
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

PowerIterationResult power_iterate(LayerOperator& map, Tensor& u, Tensor& v,
                                   const PowerIterationOptions& options) {
  require_shape("u", u, map.output_shape());
  require_shape("v", v, map.input_shape());
  if (options.steps < 0 || options.tolerance < 0 || options.max_steps < options.steps)
    throw std::invalid_argument(
        "power_iterate: need steps >= 0, tolerance >= 0 and max_steps >= steps, got steps " +
        std::to_string(options.steps) + ", tolerance " + std::to_string(options.tolerance) +
        ", max_steps " + std::to_string(options.max_steps));
  std::vector<double> start(v.data(), v.data() + v.numel());
  double sum = 0.0;
  for (double x : start) sum += x * x;
  if (!(sum > 0) || !std::isfinite(sum))
    throw std::invalid_argument("power_iterate: v must be a nonzero finite vector");
  KrylovSettings settings;
  settings.tolerance = options.tolerance;
  settings.min_iterations = options.steps + 1;
  settings.max_iterations = (options.tolerance > 0 ? options.max_steps : options.steps) + 1;
  const TopSingularValues top = top_singular_value(map, settings, start);
  std::copy(top.direction.begin(), top.direction.end(), v.data());
  std::copy(top.left.begin(), top.left.end(), u.data());
  return {top.sigma[0], top.iterations - 1, top.remaining_error[0], top.converged[0] != 0};
}

ReshapedKernelBounds reshaped_kernel_bounds(const ConvGeometry& g) {
  g.validate("reshaped_kernel_bounds");
  const AxisReads h = axis_reads(g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.out_h(), g.padding);
  const AxisReads w = axis_reads(g.in_w, g.kernel_w, g.stride_w, g.pad_w, g.out_w(), g.padding);
  return {h.interior_window && w.interior_window,
          std::sqrt(static_cast<double>(h.max_multiplicity * w.max_multiplicity))};
}

}  // namespace dpm::lipschitz
