#include "nn/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/threading.hpp"

namespace dpm::optim {
namespace {

// Elements per parallel chunk: large enough that scheduling is negligible next to streaming
// four or five arena-sized arrays, small enough that two cores share a 2.5M arena evenly.
constexpr int64_t kGrain = 1 << 15;

}  // namespace

Optimizer::Optimizer(std::string name, nn::ParameterArena& arena, double lr,
                     bool decay_all_parameters, const std::vector<std::string>& buffer_names)
    : name_(std::move(name)), arena_(arena) {
  set_lr(lr);
  for (const auto& buffer_name : buffer_names)
    buffers_.emplace_back(buffer_name, Tensor::zeros({arena.numel()}));
  for (const auto& slot : arena.slots()) {
    if (slot.numel == 0) continue;
    bool decay = decay_all_parameters || slot.weight_decay;
    if (!decay_runs_.empty() && decay_runs_.back().decay == decay)
      decay_runs_.back().end = slot.offset + slot.numel;
    else
      decay_runs_.push_back({slot.offset, slot.offset + slot.numel, decay});
  }
}

void Optimizer::require(bool ok, const char* what, const char* expected, double value) const {
  if (ok) return;
  std::ostringstream message;
  message << name_ << ": " << what << " must be " << expected << ", got " << value;
  throw std::invalid_argument(message.str());
}

void Optimizer::set_lr(double lr) {
  require(std::isfinite(lr) && lr >= 0, "lr", "finite and >= 0", lr);
  lr_ = lr;
}

void Optimizer::set_step_count(int64_t steps) {
  require(steps >= 0, "step count", ">= 0", static_cast<double>(steps));
  step_count_ = steps;
}

void Optimizer::step() {
  ++step_count_;
  update();
}

void Optimizer::for_each_piece(const std::function<void(int64_t, int64_t, bool)>& kernel) const {
  parallel_for(arena_.numel(), kGrain, [&](int64_t begin, int64_t end) {
    // The first run that ends after `begin`, then every run that starts before `end`.
    auto run = std::upper_bound(decay_runs_.begin(), decay_runs_.end(), begin,
                                [](int64_t index, const DecayRun& r) { return index < r.end; });
    for (; run != decay_runs_.end() && run->begin < end; ++run)
      kernel(std::max(begin, run->begin), std::min(end, run->end), run->decay);
  });
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  std::vector<Tensor> sources = match_state_dict(name_, buffers_, state);
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].second.copy_(sources[i]);
}

}  // namespace dpm::optim
