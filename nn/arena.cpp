#include "nn/arena.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace dpm::nn {

ParameterArena::ParameterArena(const std::vector<NamedParameter>& parameters) {
  int64_t total = 0;
  for (const auto& p : parameters) {
    slots_.push_back({p.name, p.variable.shape(), total, p.variable.numel(), p.weight_decay});
    total += p.variable.numel();
  }
  values_ = Tensor::zeros({total});
  grads_ = Tensor::zeros({total});
  for (size_t i = 0; i < parameters.size(); ++i) {
    Variable v = parameters[i].variable;
    Tensor value_view = view(values_, slots_[i]);
    value_view.copy_(v.data());
    v.data() = value_view;
    v.set_grad(view(grads_, slots_[i]));
  }
}

const ArenaSlot& ParameterArena::slot(const std::string& name) const {
  for (const auto& s : slots_)
    if (s.name == name) return s;
  throw std::out_of_range("ParameterArena: no parameter named '" + name + "'");
}

Tensor ParameterArena::view(Tensor& flat, const ArenaSlot& slot) {
  return flat.narrow(0, slot.offset, slot.numel).view(slot.shape);
}

void ParameterArena::zero_grad() {
  std::memset(grads_.data(), 0, static_cast<size_t>(grads_.numel()) * sizeof(float));
}

double ParameterArena::grad_norm() const {
  const float* g = grads_.data();
  double s = 0;
  for (int64_t i = 0, n = grads_.numel(); i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return std::sqrt(s);
}

double ParameterArena::clip_grad_norm(double max_norm) {
  double norm = grad_norm();
  // PyTorch's rule: scale by max_norm / (norm + 1e-6) when that is below one.
  double scale = max_norm / (norm + 1e-6);
  if (scale < 1.0) {
    float* g = grads_.data();
    float s = static_cast<float>(scale);
    for (int64_t i = 0, n = grads_.numel(); i < n; ++i) g[i] *= s;
  }
  return norm;
}

std::optional<std::string> ParameterArena::first_nonfinite(const Tensor& flat) const {
  const float* p = flat.data();
  for (const auto& s : slots_)
    for (int64_t i = s.offset; i < s.offset + s.numel; ++i)
      if (!std::isfinite(p[i])) return s.name;
  return std::nullopt;
}

std::optional<std::string> ParameterArena::first_nonfinite_grad() const {
  return first_nonfinite(grads_);
}
std::optional<std::string> ParameterArena::first_nonfinite_value() const {
  return first_nonfinite(values_);
}

}  // namespace dpm::nn
