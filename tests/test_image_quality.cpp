#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "autograd/rng.hpp"
#include "diffusion/inverse/image_quality.hpp"

using dpm::Rng;
using namespace dpm::diffusion::inverse;

namespace {

std::vector<float> noise_image(int64_t size, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(size));
  rng.fill_uniform(v.data(), size);
  return v;
}

// A smooth pattern [channels, height, width] in about [0.15, 0.85] with a little noise, so the
// local variances and covariances are neither all large nor all tiny.
std::vector<float> smooth_image(int64_t channels, int64_t height, int64_t width, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(channels * height * width));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < height; ++i)
      for (int64_t j = 0; j < width; ++j)
        v[(c * height + i) * width + j] = static_cast<float>(
            0.5 + 0.3 * std::sin(0.4 * i + 0.3 * j + c) + 0.05 * rng.uniform(-1.0, 1.0));
  return v;
}

std::vector<float> plus_noise(const std::vector<float>& x, double amplitude, Rng& rng) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = static_cast<float>(x[i] + amplitude * rng.uniform(-1.0, 1.0));
  return y;
}

// Mean SSIM straight from the definition: at every position whose 11 x 11 window lies inside the
// image, the direct double sum of the window's weighted moments with the 2-D Gaussian weights
// exp(-(u^2 + v^2) / (2 sigma^2)) (sigma 1.5, normalised to sum 1), then the SSIM formula; the
// mean over the positions, then over the channels.
double naive_ssim(const std::vector<float>& x, const std::vector<float>& y, int64_t channels,
                  int64_t height, int64_t width, double data_range) {
  double w[11][11];
  double weight_sum = 0.0;
  for (int u = 0; u < 11; ++u)
    for (int v = 0; v < 11; ++v) {
      w[u][v] = std::exp(-((u - 5) * (u - 5) + (v - 5) * (v - 5)) / (2.0 * 1.5 * 1.5));
      weight_sum += w[u][v];
    }
  for (auto& row : w)
    for (double& value : row) value /= weight_sum;
  const double c1 = (0.01 * data_range) * (0.01 * data_range);
  const double c2 = (0.03 * data_range) * (0.03 * data_range);
  double channel_sum = 0.0;
  for (int64_t c = 0; c < channels; ++c) {
    double map_sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 5; i < height - 5; ++i)
      for (int64_t j = 5; j < width - 5; ++j) {
        double mx = 0.0, my = 0.0, mxx = 0.0, myy = 0.0, mxy = 0.0;
        for (int u = 0; u < 11; ++u)
          for (int v = 0; v < 11; ++v) {
            const size_t at = static_cast<size_t>((c * height + i + u - 5) * width + j + v - 5);
            const double a = x[at], b = y[at];
            mx += w[u][v] * a;
            my += w[u][v] * b;
            mxx += w[u][v] * a * a;
            myy += w[u][v] * b * b;
            mxy += w[u][v] * a * b;
          }
        const double vx = mxx - mx * mx, vy = myy - my * my, vxy = mxy - mx * my;
        map_sum +=
            (2.0 * mx * my + c1) * (2.0 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        ++count;
      }
    channel_sum += map_sum / static_cast<double>(count);
  }
  return channel_sum / static_cast<double>(channels);
}

}  // namespace

TEST_CASE("ssim matches the direct-sum reference on noise and on smooth images",
          "[image-quality]") {
  Rng rng(20240611);
  struct Shape {
    int64_t channels, height, width;
  };
  for (const Shape s : {Shape{1, 28, 28}, Shape{3, 16, 20}}) {
    const int64_t size = s.channels * s.height * s.width;
    INFO("shape " << s.channels << " x " << s.height << " x " << s.width);

    const std::vector<float> a = noise_image(size, rng), b = noise_image(size, rng);
    const double noise = ssim(a.data(), b.data(), s.channels, s.height, s.width, 1.0);
    CHECK(noise == Approx(naive_ssim(a, b, s.channels, s.height, s.width, 1.0)).epsilon(1e-10));

    const std::vector<float> x = smooth_image(s.channels, s.height, s.width, rng);
    const std::vector<float> y = plus_noise(x, 0.1, rng);
    const double smooth = ssim(x.data(), y.data(), s.channels, s.height, s.width, 1.0);
    CHECK(smooth == Approx(naive_ssim(x, y, s.channels, s.height, s.width, 1.0)).epsilon(1e-10));
    // A data range other than 1 changes only C1 and C2.
    const double wide = ssim(x.data(), y.data(), s.channels, s.height, s.width, 2.5);
    CHECK(wide == Approx(naive_ssim(x, y, s.channels, s.height, s.width, 2.5)).epsilon(1e-10));
    // Not trivial values: a noisy copy keeps most of the structure, independent noise none.
    CHECK(smooth > 0.3);
    CHECK(smooth < 0.95);
    CHECK(std::abs(noise) < 0.2);
  }
}

TEST_CASE("ssim known values: identity, affine change, inversion and symmetry", "[image-quality]") {
  Rng rng(7);
  const int64_t channels = 2, height = 24, width = 17;
  const std::vector<float> x = smooth_image(channels, height, width, rng);
  const std::vector<float> y = plus_noise(x, 0.2, rng);

  CHECK(ssim(x.data(), x.data(), channels, height, width, 1.0) == Approx(1.0).epsilon(1e-12));

  std::vector<float> affine(x.size()), inverted(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    affine[i] = 0.5f * x[i] + 0.25f;
    inverted[i] = 1.0f - x[i];
  }
  CHECK(ssim(x.data(), affine.data(), channels, height, width, 1.0) < 1.0);
  CHECK(ssim(x.data(), inverted.data(), channels, height, width, 1.0) < 0.0);

  // Equal up to the rounding of a (possibly fused) multiply-add in the denominator.
  CHECK(ssim(x.data(), y.data(), channels, height, width, 1.0) ==
        Approx(ssim(y.data(), x.data(), channels, height, width, 1.0)).epsilon(1e-14));
}

TEST_CASE("psnr known values", "[image-quality]") {
  const int64_t n = 300;
  // Multiples of 1/256 plus 1/8 are exact in float, so the MSE is exactly 1/64 and
  // 10 log10(1.25^2 / (1/64)) = 10 log10(100) = 20 dB.
  std::vector<float> reference(static_cast<size_t>(n)), offset(reference.size()),
      alternating(reference.size());
  for (int64_t i = 0; i < n; ++i) {
    reference[i] = static_cast<float>(i % 256) / 256.0f;
    offset[i] = reference[i] + 0.125f;
    alternating[i] = reference[i] + (i % 2 == 0 ? 0.25f : -0.25f);
  }
  CHECK(psnr(offset.data(), reference.data(), n, 1.25) == Approx(20.0).epsilon(1e-12));
  // MSE 1/16 with range 1: 10 log10(16).
  CHECK(psnr(alternating.data(), reference.data(), n, 1.0) ==
        Approx(10.0 * std::log10(16.0)).epsilon(1e-12));
  CHECK(psnr(reference.data(), reference.data(), n, 1.0) ==
        std::numeric_limits<double>::infinity());
}

TEST_CASE("psnr_per_image and ssim_per_image give one value per image", "[image-quality]") {
  Rng rng(11);
  const int64_t batch = 3, channels = 2, height = 13, width = 15;
  const int64_t per_image = channels * height * width;
  std::vector<float> x, y;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<float> image = smooth_image(channels, height, width, rng);
    const std::vector<float> noisy = plus_noise(image, 0.05 * (b + 1), rng);
    x.insert(x.end(), noisy.begin(), noisy.end());
    y.insert(y.end(), image.begin(), image.end());
  }
  const std::vector<double> p =
      psnr_per_image(x.data(), y.data(), batch, channels, height, width, 1.0);
  const std::vector<double> s =
      ssim_per_image(x.data(), y.data(), batch, channels, height, width, 1.0);
  REQUIRE(p.size() == static_cast<size_t>(batch));
  REQUIRE(s.size() == static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x.data() + b * per_image;
    const float* yb = y.data() + b * per_image;
    CHECK(p[b] == psnr(xb, yb, per_image, 1.0));
    CHECK(s[b] == ssim(xb, yb, channels, height, width, 1.0));
  }
  // More noise, lower quality.
  CHECK(p[0] > p[1]);
  CHECK(p[1] > p[2]);
  CHECK(s[0] > s[1]);
  CHECK(s[1] > s[2]);
}

TEST_CASE("image quality rejects bad arguments, naming them", "[image-quality]") {
  const std::vector<float> image(2 * 12 * 12, 0.5f);
  const float* p = image.data();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  using Catch::Contains;

  CHECK_THROWS_AS(psnr(p, p, 0, 1.0), std::invalid_argument);
  CHECK_THROWS_WITH(psnr(p, p, 0, 1.0), Contains("psnr: n must be >= 1, got 0"));
  CHECK_THROWS_WITH(psnr(p, p, 4, 0.0), Contains("psnr: data_range must be positive"));
  CHECK_THROWS_WITH(psnr(p, p, 4, nan), Contains("psnr: data_range must be positive"));

  CHECK_THROWS_AS(ssim(p, p, 0, 12, 12, 1.0), std::invalid_argument);
  CHECK_THROWS_WITH(ssim(p, p, 0, 12, 12, 1.0), Contains("ssim: channels must be >= 1, got 0"));
  CHECK_THROWS_WITH(ssim(p, p, 1, 10, 12, 1.0), Contains("ssim: height must be >= 11, got 10"));
  CHECK_THROWS_WITH(ssim(p, p, 1, 12, 0, 1.0), Contains("ssim: width must be >= 11, got 0"));
  CHECK_THROWS_WITH(ssim(p, p, 1, 12, 12, -1.0), Contains("ssim: data_range must be positive"));

  CHECK_THROWS_WITH(psnr_per_image(p, p, 0, 1, 12, 12, 1.0),
                    Contains("psnr_per_image: batch must be >= 1, got 0"));
  CHECK_THROWS_WITH(psnr_per_image(p, p, 1, 0, 12, 12, 1.0),
                    Contains("psnr_per_image: channels must be >= 1, got 0"));
  CHECK_THROWS_WITH(psnr_per_image(p, p, 1, 1, -3, 12, 1.0),
                    Contains("psnr_per_image: height must be >= 1, got -3"));
  CHECK_THROWS_WITH(psnr_per_image(p, p, 1, 1, 12, 0, 1.0),
                    Contains("psnr_per_image: width must be >= 1, got 0"));
  CHECK_THROWS_WITH(psnr_per_image(p, p, 1, 1, 12, 12, 0.0),
                    Contains("psnr_per_image: data_range must be positive"));

  CHECK_THROWS_WITH(ssim_per_image(p, p, 0, 1, 12, 12, 1.0),
                    Contains("ssim_per_image: batch must be >= 1, got 0"));
  CHECK_THROWS_WITH(ssim_per_image(p, p, 1, 1, 12, 5, 1.0),
                    Contains("ssim_per_image: width must be >= 11, got 5"));
  CHECK_THROWS_WITH(ssim_per_image(p, p, 1, 1, 12, 12, nan),
                    Contains("ssim_per_image: data_range must be positive"));
}
