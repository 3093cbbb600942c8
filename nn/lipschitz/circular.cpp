#include <complex>
#define lapack_complex_float std::complex<float>
#define lapack_complex_double std::complex<double>
#include "nn/lipschitz/circular.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

namespace dpm::lipschitz {

double circular_conv_norm(const Tensor& weight, int64_t height, int64_t width) {
  const bool one_d = weight.defined() && weight.ndim() == 3;
  if (!weight.defined() || (!one_d && weight.ndim() != 4) || height < 1 || width < 1 ||
      (one_d && height != 1))
    throw std::invalid_argument(
        "circular_conv_norm: expected weight [Co, Ci, K] with height 1 or [Co, Ci, KH, KW], and a "
        "positive input size; got weight " +
        (weight.defined() ? weight.shape().str() : std::string("none")) + " and input " +
        std::to_string(height) + "x" + std::to_string(width));
  const Tensor w = weight.contiguous();
  const int64_t co = w.size(0), ci = w.size(1), kh = one_d ? 1 : w.size(2), kw = w.size(-1);
  const double two_pi = 2.0 * std::numbers::pi;

  std::vector<std::complex<double>> transfer(static_cast<size_t>(co * ci));
  std::vector<double> singular(static_cast<size_t>(std::min(co, ci)));
  std::vector<double> superb(singular.size());
  double largest = 0.0;
  for (int64_t f = 0; f < height; ++f) {
    for (int64_t g = 0; g < width; ++g) {
      std::fill(transfer.begin(), transfer.end(), std::complex<double>(0.0));
      for (int64_t a = 0; a < kh; ++a) {
        for (int64_t b = 0; b < kw; ++b) {
          // Exponents reduced mod the period first, so large kernels lose no phase accuracy.
          const double phase = two_pi * (static_cast<double>((f * a) % height) / height +
                                         static_cast<double>((g * b) % width) / width);
          const std::complex<double> e = std::polar(1.0, phase);
          for (int64_t o = 0; o < co; ++o)
            for (int64_t i = 0; i < ci; ++i)
              transfer[static_cast<size_t>(o * ci + i)] +=
                  static_cast<double>(w.data()[((o * ci + i) * kh + a) * kw + b]) * e;
        }
      }
      const lapack_int info =
          LAPACKE_zgesvd(LAPACK_ROW_MAJOR, 'N', 'N', static_cast<lapack_int>(co),
                         static_cast<lapack_int>(ci), transfer.data(), static_cast<lapack_int>(ci),
                         singular.data(), nullptr, 1, nullptr, 1, superb.data());
      if (info != 0)
        throw std::runtime_error("circular_conv_norm: zgesvd failed (info " + std::to_string(info) +
                                 ")");
      largest = std::max(largest, singular[0]);
    }
  }
  return largest;
}

}  // namespace dpm::lipschitz
