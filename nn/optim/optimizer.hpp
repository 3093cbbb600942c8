#pragma once
// Optimizer: the base of the arena optimizers (Adam, AdamW, SGD). Parameters, gradients and every
// per-parameter buffer (moments, momentum) are flat [numel] tensors in the arena's layout, so a
// step is one fused element-wise pass over them. Weight decay is the only per-parameter
// difference: the constructor splits the arena once into runs of slots that are or are not
// decayed, and a step calls its kernel once per (chunk, run) piece with one decay flag.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/state_dict.hpp"
#include "autograd/tensor.hpp"
#include "nn/arena.hpp"

namespace dpm::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter from the arena's gradients. The step count is incremented first, so
  // the first step sees step 1 (PyTorch's bias correction).
  void step();
  void zero_grad() { arena_.zero_grad(); }

  const std::string& name() const { return name_; }
  nn::ParameterArena& arena() { return arena_; }
  double lr() const { return lr_; }
  void set_lr(double lr);  // what an LR schedule calls before each step
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t steps);

  // The per-parameter buffers, each [numel] in the arena's layout (live: they share storage with
  // the optimizer, clone them to take a snapshot). With step_count() and lr() they continue the
  // optimizer bitwise.
  NamedTensors state_dict() const { return buffers_; }
  // Copies into the buffers: exactly the names and shapes of state_dict(), checked before
  // anything is copied.
  void load_state_dict(const NamedTensors& state);

 protected:
  // decay_all_parameters: decay every slot, instead of only those registered with
  // weight_decay = true (not biases or normalisation parameters).
  Optimizer(std::string name, nn::ParameterArena& arena, double lr, bool decay_all_parameters,
            const std::vector<std::string>& buffer_names);

  float* buffer_data(size_t index) { return buffers_[index].second.data(); }
  // Calls kernel(begin, end, decay) on disjoint pieces covering the arena, in parallel (oneTBB
  // owns the step: it is element-wise, so no piece depends on another). A piece never straddles
  // a change of the decay flag.
  void for_each_piece(const std::function<void(int64_t, int64_t, bool)>& kernel) const;
  // Throws std::invalid_argument "<name>: <what> must be <expected>, got <value>" unless ok.
  void require(bool ok, const char* what, const char* expected, double value) const;

 private:
  virtual void update() = 0;  // one step over the arena; step_count() already incremented

  struct DecayRun {
    int64_t begin = 0;
    int64_t end = 0;
    bool decay = true;
  };

  std::string name_;
  nn::ParameterArena& arena_;
  double lr_ = 0;
  int64_t step_count_ = 0;
  NamedTensors buffers_;
  std::vector<DecayRun> decay_runs_;
};

}  // namespace dpm::optim
