#include "nn/lipschitz/constants.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dpm::lipschitz {
namespace {

double resample_exponent(const char* caller, int factor, int spatial_dims) {
  if (factor < 1 || spatial_dims < 1)
    throw std::invalid_argument(std::string(caller) +
                                ": factor and spatial_dims must be >= 1, got " +
                                std::to_string(factor) + " and " + std::to_string(spatial_dims));
  return std::pow(static_cast<double>(factor), 0.5 * spatial_dims);
}

}  // namespace

double avg_pool_lipschitz(int factor, int spatial_dims) {
  return 1.0 / resample_exponent("avg_pool_lipschitz", factor, spatial_dims);
}

double upsample_nearest_lipschitz(int factor, int spatial_dims) {
  return resample_exponent("upsample_nearest_lipschitz", factor, spatial_dims);
}

double batchnorm_eval_lipschitz(const nn::BatchNorm& batchnorm) {
  const Tensor gamma = batchnorm.weight().data().contiguous();
  const Tensor var = batchnorm.running_var().contiguous();
  double largest = 0.0;
  for (int64_t c = 0; c < batchnorm.num_features(); ++c)
    largest = std::max(largest, std::abs(static_cast<double>(gamma.data()[c])) /
                                    std::sqrt(static_cast<double>(var.data()[c]) +
                                              static_cast<double>(batchnorm.eps())));
  return largest;
}

std::vector<double> film_lipschitz(nn::FiLM& film, const Tensor& temb) {
  if (!temb.defined() || temb.ndim() != 2)
    throw std::invalid_argument("film_lipschitz: expected temb [G, time_dim], got " +
                                (temb.defined() ? temb.shape().str() : std::string("none")));
  NoGradGuard no_grad;
  const int64_t g = temb.size(0), channels = film.channels();
  Variable t(temb);
  const Tensor at_one = film.forward(Variable(Tensor::ones({g, channels, 1})), t).data();
  const Tensor at_zero = film.forward(Variable(Tensor::zeros({g, channels, 1})), t).data();
  std::vector<double> factors(static_cast<size_t>(g), 0.0);
  for (int64_t row = 0; row < g; ++row)
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t i = row * channels + c;
      factors[static_cast<size_t>(row)] =
          std::max(factors[static_cast<size_t>(row)],
                   std::abs(static_cast<double>(at_one.data()[i]) - at_zero.data()[i]));
    }
  return factors;
}

}  // namespace dpm::lipschitz
