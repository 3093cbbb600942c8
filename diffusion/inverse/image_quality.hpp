#pragma once
// Image quality of a restoration x against its reference: PSNR, and the mean SSIM of Wang et al.
// (2004) as scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False, data_range=L) defines it: an 11 x 11 Gaussian window (sigma 1.5,
// radius 5, weights summing to 1), C1 = (0.01 L)^2, C2 = (0.03 L)^2, the SSIM map averaged over the
// positions whose whole window lies inside the image (scikit-image's 5-pixel crop), then over the
// channels. Everything is accumulated in double.
#include <cstdint>
#include <vector>

namespace dpm::diffusion::inverse {

// 10 log10(data_range^2 / MSE) in dB over the n values of x and reference; +infinity when they are
// equal. n >= 1, data_range > 0 (the span of valid pixel values, e.g. 1 for [0, 1] images).
double psnr(const float* x, const float* reference, int64_t n, double data_range);

// Mean SSIM of x and reference [channels, height, width]; height and width >= 11 (the window),
// data_range > 0. Symmetric in its two images (up to rounding).
double ssim(const float* x, const float* reference, int64_t channels, int64_t height, int64_t width,
            double data_range);

// One psnr / ssim per image of x and reference [batch, channels, height, width].
std::vector<double> psnr_per_image(const float* x, const float* reference, int64_t batch,
                                   int64_t channels, int64_t height, int64_t width,
                                   double data_range);
std::vector<double> ssim_per_image(const float* x, const float* reference, int64_t batch,
                                   int64_t channels, int64_t height, int64_t width,
                                   double data_range);

}  // namespace dpm::diffusion::inverse
