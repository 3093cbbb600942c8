#pragma once
// Ema: an exponential moving average of a model's weights, kept as one flat shadow copy of the
// parameter arena's values, for evaluating and sampling with smoothed weights (standard in
// diffusion training).
#include <cstdint>

#include "autograd/state_dict.hpp"
#include "autograd/tensor.hpp"
#include "nn/arena.hpp"

namespace dpm::optim {

class Ema {
 public:
  // The shadow starts as a copy of the arena's current values.
  // warmup: each update uses min(decay, (1 + n) / (10 + n)), n = the number of earlier updates
  // (TensorFlow's ExponentialMovingAverage num_updates rule), so early averages are not
  // dominated by the random initialisation: 0.1 on the first update, 2/11 on the second, ...
  explicit Ema(nn::ParameterArena& arena, bool warmup = false);

  // shadow = d * shadow + (1 - d) * value over the whole arena in one pass, d =
  // effective_decay(decay); decay must be in [0, 1].
  void update(double decay);
  double effective_decay(double decay) const;  // the decay the next update(decay) uses

  // Exchanges the shadow and the live weights (evaluate with the average), and back again when
  // called a second time; a round trip restores the weights bitwise. update() and shadow() throw
  // while swapped, so an average is never updated from or saved as the wrong weights.
  void swap();
  bool swapped() const { return swapped_; }

  // The averaged weights, [numel] in the arena's layout (live: shares storage).
  const Tensor& shadow() const;
  // {"shadow": shadow()}; with update_count() it continues the average bitwise.
  NamedTensors state_dict() const { return {{"shadow", shadow()}}; }
  // Copies a saved shadow in: exactly {"shadow": [numel]}.
  void load_state_dict(const NamedTensors& state);
  int64_t update_count() const { return update_count_; }
  void set_update_count(int64_t count);
  bool warmup() const { return warmup_; }

 private:
  void require_not_swapped(const char* caller) const;

  nn::ParameterArena& arena_;
  Tensor shadow_;
  bool warmup_;
  bool swapped_ = false;
  int64_t update_count_ = 0;
};

}  // namespace dpm::optim
