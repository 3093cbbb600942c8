#pragma once
// SpikeDetector: the trainer's alarm for a loss or gradient norm far above its recent level,
// a sign of an unstable run worth a look long before anything becomes NaN.
//
// A value is a spike when it lies more than `z` standard deviations above the running mean,
// once `warmup` values have been seen. Mean and variance are exponential moving averages with
// weight alpha = max(1/n, 1/window) for the n-th value: over the first `window` values that is
// exactly the plain mean and (population) variance of everything seen, so the start of training
// does not bias them; afterwards they follow the last ~`window` steps. A spike is folded into the
// statistics too, so a lasting jump to a new level alarms once or twice, not on every step.
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

namespace dpm::train {

struct SpikeDetectorOptions {
  double z = 6.0;       // standard deviations above the mean; 0 turns the detector off
  int64_t warmup = 50;  // values seen before the first alarm can fire
  int64_t window = 50;  // horizon of the moving averages, in values
  // The standard deviation is taken as at least this fraction of |mean|: on a flat plateau the
  // variance is rounding noise, and a rise of a few ulps is not a spike.
  double min_relative_std = 1e-3;
};

class SpikeDetector {
 public:
  // Throws std::invalid_argument for z < 0, warmup < 0, window < 1 or min_relative_std < 0.
  explicit SpikeDetector(SpikeDetectorOptions options = {});

  // Scores x against the statistics of the values before it, then adds x to them. Returns the
  // z-score when x is a spike. Non-finite values are neither scored nor added (the trainer
  // stops on those anyway).
  std::optional<double> observe(double x);

  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  double variance() const { return variance_; }

  // The running statistics, for resume files: {"count", "mean", "variance"} (scalars, kept in
  // JSON so that the doubles round trip exactly).
  nlohmann::json state_json() const;
  // Throws std::invalid_argument unless `state` is what state_json() writes (count >= 0,
  // variance >= 0, all finite).
  void load_state_json(const nlohmann::json& state);

 private:
  SpikeDetectorOptions options_;
  int64_t count_ = 0;
  double mean_ = 0;
  double variance_ = 0;
};

}  // namespace dpm::train
