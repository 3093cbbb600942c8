#include "trainers/spike_detector.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dpm::train {

SpikeDetector::SpikeDetector(SpikeDetectorOptions options) : options_(options) {
  if (!(options_.z >= 0) || options_.warmup < 0 || options_.window < 1 ||
      !(options_.min_relative_std >= 0))
    throw std::invalid_argument(
        "SpikeDetector: need z >= 0, warmup >= 0, window >= 1 and min_relative_std >= 0, got z = " +
        std::to_string(options_.z) + ", warmup = " + std::to_string(options_.warmup) +
        ", window = " + std::to_string(options_.window) +
        ", min_relative_std = " + std::to_string(options_.min_relative_std));
}

std::optional<double> SpikeDetector::observe(double x) {
  if (!std::isfinite(x)) return std::nullopt;
  std::optional<double> spike;
  if (options_.z > 0 && count_ >= options_.warmup && count_ > 0) {
    double std_dev = std::max(std::sqrt(variance_), options_.min_relative_std * std::abs(mean_));
    double z = std_dev > 0 ? (x - mean_) / std_dev : (x > mean_ ? HUGE_VAL : 0.0);
    if (z > options_.z) spike = z;
  }
  // The incremental weighted update (Finch 2009); with alpha = 1/n it is the plain running mean
  // and variance.
  ++count_;
  double alpha = 1.0 / static_cast<double>(std::min(count_, options_.window));
  double delta = x - mean_;
  mean_ += alpha * delta;
  variance_ = (1.0 - alpha) * (variance_ + alpha * delta * delta);
  return spike;
}

nlohmann::json SpikeDetector::state_json() const {
  return {{"count", count_}, {"mean", mean_}, {"variance", variance_}};
}

void SpikeDetector::load_state_json(const nlohmann::json& state) {
  auto number = [&](const char* key) -> const nlohmann::json& {
    if (!state.is_object() || !state.contains(key) || !state[key].is_number())
      throw std::invalid_argument(std::string("SpikeDetector::load_state_json: field '") + key +
                                  "' must be a number, got " + state.dump());
    return state[key];
  };
  const nlohmann::json& count = number("count");
  double mean = number("mean").get<double>(), variance = number("variance").get<double>();
  if (!count.is_number_integer() || count.get<int64_t>() < 0 || !std::isfinite(mean) ||
      !(variance >= 0) || !std::isfinite(variance))
    throw std::invalid_argument(
        "SpikeDetector::load_state_json: need an integer count >= 0, a finite mean and a finite "
        "variance >= 0, got " +
        state.dump());
  count_ = count.get<int64_t>();
  mean_ = mean;
  variance_ = variance;
}

}  // namespace dpm::train
