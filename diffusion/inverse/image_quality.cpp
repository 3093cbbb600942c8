#include "diffusion/inverse/image_quality.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace dpm::diffusion::inverse {
namespace {

// scikit-image's window: gaussian_filter truncated at 3.5 sigma, radius int(3.5 * 1.5 + 0.5) = 5.
constexpr double kSigma = 1.5;
constexpr int64_t kRadius = 5;
constexpr int64_t kWindow = 2 * kRadius + 1;
constexpr double kK1 = 0.01, kK2 = 0.03;

using Taps = std::array<double, kWindow>;

void require_at_least(int64_t value, int64_t least, const char* caller, const char* field) {
  if (value < least)
    throw std::invalid_argument(std::string(caller) + ": " + field + " must be >= " +
                                std::to_string(least) + ", got " + std::to_string(value));
}

void require_range(double data_range, const char* caller) {
  if (!(data_range > 0.0) || !std::isfinite(data_range))
    throw std::invalid_argument(std::string(caller) +
                                ": data_range must be positive and finite, got " +
                                std::to_string(data_range));
}

void require_image(int64_t channels, int64_t height, int64_t width, double data_range,
                   const char* caller) {
  require_at_least(channels, 1, caller, "channels");
  require_at_least(height, kWindow, caller, "height");
  require_at_least(width, kWindow, caller, "width");
  require_range(data_range, caller);
}

// The 1-D factor of the window; the 2-D window is its outer product with itself, which is the
// normalised 2-D Gaussian.
Taps gaussian_taps() {
  Taps taps{};
  double sum = 0.0;
  for (int64_t k = 0; k < kWindow; ++k) {
    const double offset = static_cast<double>(k - kRadius);
    taps[k] = std::exp(-offset * offset / (2.0 * kSigma * kSigma));
    sum += taps[k];
  }
  for (double& t : taps) t /= sum;
  return taps;
}

double unchecked_psnr(const float* x, const float* reference, int64_t n, double data_range) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(reference[i]);
    sum += d * d;
  }
  const double mse = sum / static_cast<double>(n);
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse);
}

// Mean SSIM map of one plane pair [height, width] over the valid positions [height - 10,
// width - 10]. The rows are filtered first (only the valid columns), then the columns (only the
// valid rows), for the five moments x, y, x^2, y^2, xy.
double plane_ssim(const float* x, const float* y, int64_t height, int64_t width, double c1,
                  double c2, const Taps& taps) {
  const int64_t out_h = height - 2 * kRadius, out_w = width - 2 * kRadius;
  // Row-filtered moments [height, out_w].
  const size_t row_size = static_cast<size_t>(height * out_w);
  std::vector<double> rx(row_size), ry(row_size), rxx(row_size), ryy(row_size), rxy(row_size);
  for (int64_t r = 0; r < height; ++r) {
    const float* xr = x + r * width;
    const float* yr = y + r * width;
    for (int64_t j = 0; j < out_w; ++j) {
      double sx = 0.0, sy = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0;
      for (int64_t k = 0; k < kWindow; ++k) {
        // Products of two floats are exact in double, so the xy moment is the same both ways.
        const double a = xr[j + k], b = yr[j + k], w = taps[k];
        sx += w * a;
        sy += w * b;
        sxx += w * (a * a);
        syy += w * (b * b);
        sxy += w * (a * b);
      }
      const size_t at = static_cast<size_t>(r * out_w + j);
      rx[at] = sx;
      ry[at] = sy;
      rxx[at] = sxx;
      ryy[at] = syy;
      rxy[at] = sxy;
    }
  }
  // One output row of the five local moments at a time [out_w].
  std::vector<double> mx(out_w), my(out_w), mxx(out_w), myy(out_w), mxy(out_w);
  double total = 0.0;
  for (int64_t i = 0; i < out_h; ++i) {
    std::fill(mx.begin(), mx.end(), 0.0);
    std::fill(my.begin(), my.end(), 0.0);
    std::fill(mxx.begin(), mxx.end(), 0.0);
    std::fill(myy.begin(), myy.end(), 0.0);
    std::fill(mxy.begin(), mxy.end(), 0.0);
    for (int64_t k = 0; k < kWindow; ++k) {
      const double w = taps[k];
      const size_t row = static_cast<size_t>((i + k) * out_w);
      for (int64_t j = 0; j < out_w; ++j) {
        mx[j] += w * rx[row + j];
        my[j] += w * ry[row + j];
        mxx[j] += w * rxx[row + j];
        myy[j] += w * ryy[row + j];
        mxy[j] += w * rxy[row + j];
      }
    }
    for (int64_t j = 0; j < out_w; ++j) {
      // Population (co)variances, as use_sample_covariance=False.
      const double vx = mxx[j] - mx[j] * mx[j];
      const double vy = myy[j] - my[j] * my[j];
      const double vxy = mxy[j] - mx[j] * my[j];
      total += (2.0 * mx[j] * my[j] + c1) * (2.0 * vxy + c2) /
               ((mx[j] * mx[j] + my[j] * my[j] + c1) * (vx + vy + c2));
    }
  }
  return total / static_cast<double>(out_h * out_w);
}

double unchecked_ssim(const float* x, const float* reference, int64_t channels, int64_t height,
                      int64_t width, double data_range, const Taps& taps) {
  const double c1 = (kK1 * data_range) * (kK1 * data_range);
  const double c2 = (kK2 * data_range) * (kK2 * data_range);
  const int64_t plane = height * width;
  double sum = 0.0;
  for (int64_t c = 0; c < channels; ++c)
    sum += plane_ssim(x + c * plane, reference + c * plane, height, width, c1, c2, taps);
  return sum / static_cast<double>(channels);
}

}  // namespace

double psnr(const float* x, const float* reference, int64_t n, double data_range) {
  require_at_least(n, 1, "psnr", "n");
  require_range(data_range, "psnr");
  return unchecked_psnr(x, reference, n, data_range);
}

double ssim(const float* x, const float* reference, int64_t channels, int64_t height, int64_t width,
            double data_range) {
  require_image(channels, height, width, data_range, "ssim");
  return unchecked_ssim(x, reference, channels, height, width, data_range, gaussian_taps());
}

std::vector<double> psnr_per_image(const float* x, const float* reference, int64_t batch,
                                   int64_t channels, int64_t height, int64_t width,
                                   double data_range) {
  require_at_least(batch, 1, "psnr_per_image", "batch");
  require_at_least(channels, 1, "psnr_per_image", "channels");
  require_at_least(height, 1, "psnr_per_image", "height");
  require_at_least(width, 1, "psnr_per_image", "width");
  require_range(data_range, "psnr_per_image");
  const int64_t n = channels * height * width;
  std::vector<double> out(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b)
    out[b] = unchecked_psnr(x + b * n, reference + b * n, n, data_range);
  return out;
}

std::vector<double> ssim_per_image(const float* x, const float* reference, int64_t batch,
                                   int64_t channels, int64_t height, int64_t width,
                                   double data_range) {
  require_at_least(batch, 1, "ssim_per_image", "batch");
  require_image(channels, height, width, data_range, "ssim_per_image");
  const Taps taps = gaussian_taps();
  const int64_t n = channels * height * width;
  std::vector<double> out(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b)
    out[b] =
        unchecked_ssim(x + b * n, reference + b * n, channels, height, width, data_range, taps);
  return out;
}

}  // namespace dpm::diffusion::inverse
