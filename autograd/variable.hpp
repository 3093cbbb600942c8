#pragma once
// Variable: a Tensor plus reverse-mode autodiff (a dynamic tape in the style of flashlight).
// Each op result holds its inputs and a backward closure; backward() walks the graph in an
// iterative topological order (no recursion, so deep graphs cannot overflow the stack),
// accumulates gradients into leaves' .grad, and frees the graph unless asked to retain it.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace dpm {

class Variable;

// A backward closure receives the gradient of the op's output and the op's inputs, and
// *accumulates* into inputs[i].grad_buffer() for every input that requires_grad().
using BackwardFn = std::function<void(const Tensor& grad_output, std::vector<Variable>& inputs)>;

class Variable {
 public:
  Variable() = default;  // undefined
  explicit Variable(Tensor data, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const { return impl_->data; }
  Tensor& data() { return impl_->data; }  // in-place updates (optimizers) go through this
  const Shape& shape() const { return impl_->data.shape(); }
  int ndim() const { return impl_->data.ndim(); }
  int64_t numel() const { return impl_->data.numel(); }
  int64_t size(int dim) const { return impl_->data.size(dim); }
  float item() const { return impl_->data.item(); }

  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Variable& set_requires_grad(bool value);
  bool is_leaf() const { return !impl_->backward && !impl_->graph_released; }
  const char* op_name() const { return impl_->op_name; }

  // Gradient accumulated by backward(); undefined until something flows in.
  const Tensor& grad() const { return impl_->grad; }
  bool has_grad() const { return impl_->grad.defined(); }
  // Binds the gradient to an existing buffer (a view into a gradient arena); backward
  // accumulates into it from then on. Shape must match.
  void set_grad(Tensor grad);
  void zero_grad();  // zero-fills a bound or allocated gradient, keeping its storage
  // The gradient to accumulate into, allocated and zeroed on first use.
  Tensor& grad_buffer();

  Variable detach() const;  // same data, no history, requires_grad false

  // Seeds d(self)/d(self) = 1 (self must have one element) or the given gradient.
  void backward(bool retain_graph = false);
  void backward(const Tensor& grad_output, bool retain_graph = false);

  // For op implementers: wraps an op's output. Records a node only when grad mode is on and some
  // input requires grad; otherwise the result is a plain constant.
  static Variable make_result(Tensor data, std::vector<Variable> inputs, BackwardFn backward,
                              const char* op_name);

  // Identity of the underlying node (two Variables may share one).
  const void* id() const { return impl_.get(); }

 private:
  struct Impl {
    ~Impl();  // iterative, so dropping a deep graph cannot overflow the stack
    Tensor data;
    Tensor grad;
    bool requires_grad = false;
    std::vector<Variable> inputs;
    BackwardFn backward;
    const char* op_name = "leaf";
    bool graph_released = false;  // backward ran without retain_graph: a second one must fail
  };
  std::shared_ptr<Impl> impl_;
};

// True unless a NoGradGuard is alive on this thread.
bool grad_mode_enabled();

// While alive, ops record no graph (inference, optimizer updates, evaluation).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace dpm
