#pragma once
// ParameterArena: all parameters of a model in one contiguous float block, and all gradients in
// another of the same layout. Each parameter's Variable is rebound to a named view of both, so a
// whole-model operation (zero-grad, clipping, an optimizer step, EMA, saving) is one pass, and an
// optimizer's moment buffers are plain arena-sized tensors indexed by the same slots.
#include <optional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "nn/module.hpp"

namespace dpm::nn {

struct ArenaSlot {
  std::string name;
  Shape shape;
  int64_t offset = 0;  // in elements, into every arena-sized buffer
  int64_t numel = 0;
  bool weight_decay = true;
};

class ParameterArena {
 public:
  // Copies each parameter's current value into the arena and rebinds it (data and grad).
  explicit ParameterArena(const std::vector<NamedParameter>& parameters);

  int64_t numel() const { return values_.numel(); }
  Tensor& values() { return values_; }  // [numel]
  Tensor& grads() { return grads_; }    // [numel]
  const std::vector<ArenaSlot>& slots() const { return slots_; }
  const ArenaSlot& slot(const std::string& name) const;  // throws naming the parameter

  // The view of `flat` (any [numel] buffer with the arena's layout) that belongs to `slot`.
  static Tensor view(Tensor& flat, const ArenaSlot& slot);

  void zero_grad();
  double grad_norm() const;  // global L2 norm, accumulated in double in a fixed order
  // Scales all gradients so their global norm is at most max_norm; returns the norm before.
  double clip_grad_norm(double max_norm);
  // Name of the first parameter whose gradient (or value) holds a NaN or Inf, if any.
  std::optional<std::string> first_nonfinite_grad() const;
  std::optional<std::string> first_nonfinite_value() const;

 private:
  std::optional<std::string> first_nonfinite(const Tensor& flat) const;

  Tensor values_;
  Tensor grads_;
  std::vector<ArenaSlot> slots_;
};

}  // namespace dpm::nn
