#pragma once
// Module: the libtorch-style base of every layer and model. Derived constructors register
// parameters, buffers and submodules by name; names compose with dots ("down.0.conv1.weight"),
// in registration order, so checkpoints and PyTorch state_dicts line up.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/state_dict.hpp"
#include "autograd/variable.hpp"

namespace dpm::lipschitz {
class LayerNorms;
}  // namespace dpm::lipschitz

namespace dpm::nn {

class ParameterArena;

struct NamedParameter {
  std::string name;
  Variable variable;
  bool weight_decay = true;  // false for biases and normalisation parameters (AdamW default)
};

class Module {
 public:
  explicit Module(std::string type_name);
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& type_name() const { return type_name_; }

  std::vector<NamedParameter> named_parameters() const;
  NamedTensors named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  std::vector<Variable> parameters() const;
  int64_t parameter_count() const;

  // Every parameter, then every buffer, by dotted name in registration order (the names of a
  // checkpoint and of a PyTorch state_dict); shares storage.
  NamedTensors state_dict() const;
  // Strict, like PyTorch's load_state_dict(strict=True): exactly the names of state_dict() with
  // equal shapes, else std::invalid_argument lists every missing, unexpected and wrongly shaped
  // tensor and the module is left untouched. Values are copied into the existing storage, so
  // Variables, arena views and buffer handles stay valid.
  void load_state_dict(const NamedTensors& state);

  // Recursive: BatchNorm and dropout-like layers read is_training().
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();

  // The flat storage of this module's parameters and gradients, built on first call: every
  // parameter's data and grad become views into two contiguous blocks, so zero-grad, clipping,
  // optimizer steps, EMA, checkpoints and spectral scans are single passes. Call it on the root
  // module after construction; registering parameters afterwards is an error.
  ParameterArena& arena();

  // A certified upper bound on the Lipschitz constant (l2) of forward in its first tensor input,
  // any other input (the time embedding) held fixed, composed from the measured norms of the
  // module's layers by the rules of nn/lipschitz/autolip.hpp. Throws lipschitz::Unbounded when
  // there is no finite bound; the default has no rule and throws.
  virtual double lipschitz_bound(const lipschitz::LayerNorms& norms) const;
  // What that bound covers (the rules it composes), for reports.
  virtual std::string lipschitz_bound_note() const;

 protected:
  // Registers a trainable tensor; returns the Variable the module keeps and uses in forward.
  Variable register_parameter(const std::string& name, Tensor value, bool weight_decay = true);
  // Registers persistent non-trainable state (BatchNorm running statistics). The returned
  // Tensor shares storage with the registered one; loading a checkpoint copies into it.
  Tensor register_buffer(const std::string& name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) const;
  void collect_buffers(const std::string& prefix, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<NamedParameter> parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::unique_ptr<ParameterArena> arena_;
};

}  // namespace dpm::nn
