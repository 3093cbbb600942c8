#include "nn/time_embedding.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "nn/shape_trace.hpp"

namespace dpm::nn {

SinusoidalTimeEmbedding::SinusoidalTimeEmbedding(int64_t size)
    : Module("SinusoidalTimeEmbedding"), size_(size) {
  // half - 1 divides the exponent, so half >= 2.
  if (size < 4 || size % 2 != 0)
    throw std::invalid_argument("SinusoidalTimeEmbedding: size must be even and >= 4, got " +
                                std::to_string(size));
}

Variable SinusoidalTimeEmbedding::forward(const std::vector<int64_t>& steps) {
  if (steps.empty())
    throw std::invalid_argument("SinusoidalTimeEmbedding: steps is empty (need one per sample)");
  const int64_t half = size_ / 2;
  const auto batch = static_cast<int64_t>(steps.size());
  Tensor emb = Tensor::empty({batch, size_});
  float* out = emb.data();
  // In double, then rounded once: i f_k reaches thousands of radians for long schedules.
  const double rate = std::log(10000.0) / static_cast<double>(half - 1);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t step = steps[static_cast<size_t>(b)];
    if (step < 0)
      throw std::invalid_argument("SinusoidalTimeEmbedding: step index must be >= 0, got " +
                                  std::to_string(step) + " for sample " + std::to_string(b));
    for (int64_t k = 0; k < half; ++k) {
      double angle = static_cast<double>(step) * std::exp(-rate * static_cast<double>(k));
      out[b * size_ + k] = static_cast<float>(std::sin(angle));
      out[b * size_ + half + k] = static_cast<float>(std::cos(angle));
    }
  }
  return trace_output(*this, Variable(emb));
}

}  // namespace dpm::nn
