#include "nn/init.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace dpm::nn {

Tensor default_uniform_init(const Shape& shape, int64_t fan_in, Rng& rng) {
  if (fan_in <= 0)
    throw std::invalid_argument("default_uniform_init: fan_in must be positive, got " +
                                std::to_string(fan_in));
  float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)));
  return rand_uniform(shape, rng, -bound, bound);
}

}  // namespace dpm::nn
