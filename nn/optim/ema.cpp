#include "nn/optim/ema.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "autograd/threading.hpp"

namespace dpm::optim {
namespace {

constexpr int64_t kGrain = 1 << 15;  // as the optimizers: a streaming element-wise pass

}  // namespace

Ema::Ema(nn::ParameterArena& arena, bool warmup)
    : arena_(arena), shadow_(arena.values().clone()), warmup_(warmup) {}

void Ema::require_not_swapped(const char* caller) const {
  if (swapped_)
    throw std::logic_error(std::string("Ema::") + caller +
                           ": the averaged weights are swapped into the model; call swap() again "
                           "first");
}

double Ema::effective_decay(double decay) const {
  if (!warmup_) return decay;
  double n = static_cast<double>(update_count_);
  return std::min(decay, (1 + n) / (10 + n));
}

void Ema::update(double decay) {
  require_not_swapped("update");
  if (!(decay >= 0 && decay <= 1)) {
    std::ostringstream message;
    message << "Ema::update: decay must be in [0, 1], got " << decay;
    throw std::invalid_argument(message.str());
  }
  const double d = effective_decay(decay);
  const float keep = static_cast<float>(d);
  const float take = static_cast<float>(1 - d);
  float* shadow = shadow_.data();
  const float* value = arena_.values().data();
  // oneTBB owns the pass; element-wise, so any split gives the same bits.
  parallel_for(shadow_.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) shadow[i] = keep * shadow[i] + take * value[i];
  });
  ++update_count_;
}

void Ema::swap() {
  float* shadow = shadow_.data();
  float* value = arena_.values().data();
  parallel_for(shadow_.numel(), kGrain, [&](int64_t begin, int64_t end) {
    std::swap_ranges(shadow + begin, shadow + end, value + begin);
  });
  swapped_ = !swapped_;
}

const Tensor& Ema::shadow() const {
  require_not_swapped("shadow");
  return shadow_;
}

void Ema::load_state_dict(const NamedTensors& state) {
  require_not_swapped("load_state_dict");
  shadow_.copy_(match_state_dict("Ema", {{"shadow", shadow_}}, state)[0]);
}

void Ema::set_update_count(int64_t count) {
  if (count < 0)
    throw std::invalid_argument("Ema::set_update_count: count must be >= 0, got " +
                                std::to_string(count));
  update_count_ = count;
}

}  // namespace dpm::optim
