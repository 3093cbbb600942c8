#include "nn/module.hpp"

#include <stdexcept>

#include "nn/arena.hpp"
#include "nn/lipschitz/autolip.hpp"

namespace dpm::nn {

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}
Module::~Module() = default;

double Module::lipschitz_bound(const lipschitz::LayerNorms&) const {
  throw lipschitz::Unbounded(*this, "has no AutoLip rule");
}

std::string Module::lipschitz_bound_note() const {
  return "AutoLip over the " + type_name_ + " graph";
}

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(type_name_ + ": invalid member name '" + name +
                                "' (non-empty, no dots)");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  bool parameter_taken = false;
  for (const auto& p : parameters_) parameter_taken = parameter_taken || p.name == name;
  if (parameter_taken || taken(buffers_) || taken(children_))
    throw std::invalid_argument(type_name_ + ": member name '" + name + "' registered twice");
  if (arena_)
    throw std::logic_error(type_name_ + ": cannot register '" + name +
                           "' after the parameter arena was built");
}

Variable Module::register_parameter(const std::string& name, Tensor value, bool weight_decay) {
  check_new_name(name);
  Variable v(std::move(value), true);
  parameters_.push_back({name, v, weight_decay});
  return v;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  if (!module) throw std::invalid_argument(type_name_ + ": submodule '" + name + "' is null");
  children_.emplace_back(name, std::move(module));
}

void Module::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& p : parameters_) out.push_back({prefix + p.name, p.variable, p.weight_decay});
  for (const auto& [name, child] : children_) child->collect_parameters(prefix + name + ".", out);
}

void Module::collect_buffers(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, t] : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  collect_parameters("", out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect_buffers("", out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors state;
  for (const auto& p : named_parameters()) state.emplace_back(p.name, p.variable.data());
  for (auto& buffer : named_buffers()) state.push_back(std::move(buffer));
  return state;
}

void Module::load_state_dict(const NamedTensors& state) {
  NamedTensors destinations = state_dict();
  // Checks everything before copying anything, so a mismatched dict leaves the module as it was.
  std::vector<Tensor> sources = match_state_dict(type_name_, destinations, state);
  for (size_t i = 0; i < destinations.size(); ++i) destinations[i].second.copy_(sources[i]);
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& p : named_parameters()) out.push_back(p.variable);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.variable.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  if (arena_) {
    arena_->zero_grad();
    return;
  }
  for (auto& p : named_parameters()) p.variable.zero_grad();
}

ParameterArena& Module::arena() {
  if (!arena_) arena_ = std::make_unique<ParameterArena>(named_parameters());
  return *arena_;
}

}  // namespace dpm::nn
