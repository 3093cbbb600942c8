#include "autograd/variable.hpp"

#include <stdexcept>
#include <unordered_set>

namespace dpm {
namespace {
thread_local bool t_grad_mode = true;
}  // namespace

bool grad_mode_enabled() {
  return t_grad_mode;
}
NoGradGuard::NoGradGuard() : previous_(t_grad_mode) {
  t_grad_mode = false;
}
NoGradGuard::~NoGradGuard() {
  t_grad_mode = previous_;
}

Variable::Variable(Tensor data, bool requires_grad) : impl_(std::make_shared<Impl>()) {
  impl_->data = std::move(data);
  impl_->requires_grad = requires_grad;
}

Variable& Variable::set_requires_grad(bool value) {
  if (!is_leaf())
    throw std::logic_error("set_requires_grad: only leaves can change it (this is the result of '" +
                           std::string(op_name()) + "'); use detach()");
  impl_->requires_grad = value;
  return *this;
}

void Variable::set_grad(Tensor grad) {
  if (grad.defined() && grad.shape() != shape())
    throw std::invalid_argument("set_grad: gradient shape " + grad.shape().str() +
                                " differs from the variable's " + shape().str());
  impl_->grad = std::move(grad);
}

void Variable::zero_grad() {
  if (impl_->grad.defined()) impl_->grad.zero_();
}

Tensor& Variable::grad_buffer() {
  if (!impl_->grad.defined()) impl_->grad = Tensor::zeros(shape());
  return impl_->grad;
}

Variable::Impl::~Impl() {
  // Frees a deep graph iteratively: inputs whose last owner is this node are taken over and
  // emptied here, so destroying a chain of n nodes does not recurse n levels deep.
  std::vector<std::shared_ptr<Impl>> pending;
  auto take_inputs = [&pending](std::vector<Variable>& from) {
    for (Variable& v : from)
      if (v.impl_) pending.push_back(std::move(v.impl_));
    from.clear();
  };
  take_inputs(inputs);
  while (!pending.empty()) {
    std::shared_ptr<Impl> node = std::move(pending.back());
    pending.pop_back();
    if (node.use_count() == 1) take_inputs(node->inputs);
  }
}

Variable Variable::detach() const {
  return Variable(impl_->data, false);
}

Variable Variable::make_result(Tensor data, std::vector<Variable> inputs, BackwardFn backward,
                               const char* op_name) {
  bool needs_grad = false;
  if (grad_mode_enabled())
    for (const Variable& v : inputs) needs_grad = needs_grad || v.requires_grad();
  Variable out(std::move(data), needs_grad);
  if (needs_grad) {
    out.impl_->inputs = std::move(inputs);
    out.impl_->backward = std::move(backward);
    out.impl_->op_name = op_name;
  }
  return out;
}

void Variable::backward(bool retain_graph) {
  if (numel() != 1)
    throw std::invalid_argument(
        "backward: implicit gradient needs a one-element output, got shape " + shape().str() +
        "; pass a gradient");
  backward(Tensor::ones(shape()), retain_graph);
}

void Variable::backward(const Tensor& grad_output, bool retain_graph) {
  if (!requires_grad())
    throw std::logic_error(
        "backward: the output does not require grad (no input requires it, or "
        "it was computed under NoGradGuard)");
  auto check_not_released = [](const Impl* node) {
    if (node->graph_released)
      throw std::logic_error(std::string("backward: the graph through '") + node->op_name +
                             "' was already freed; pass retain_graph = true to the first backward");
  };
  check_not_released(impl_.get());
  if (grad_output.shape() != shape())
    throw std::invalid_argument("backward: gradient shape " + grad_output.shape().str() +
                                " differs from the output's " + shape().str());

  // Iterative post-order DFS: a node is appended after all nodes it depends on. `order` owns its
  // nodes: freeing the graph below drops the inputs' references, which must not free a node
  // that is still to be visited.
  std::vector<std::shared_ptr<Impl>> order;
  std::unordered_set<Impl*> visited;
  std::vector<std::pair<std::shared_ptr<Impl>, size_t>> stack{{impl_, 0}};
  visited.insert(impl_.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const std::shared_ptr<Impl>& child = node->inputs[next++].impl_;
      check_not_released(child.get());
      if (child->requires_grad && child->backward && visited.insert(child.get()).second)
        stack.emplace_back(child, 0);
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  grad_buffer().add_(grad_output);
  // Reverse post-order: every node's gradient is complete before its backward runs.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Impl* node = it->get();
    if (!node->backward) continue;  // the output itself is a leaf
    if (node->grad.defined()) {
      Tensor grad = std::move(node->grad);
      node->grad = Tensor();  // non-leaf gradients are transient: never accumulate across calls
      node->backward(grad, node->inputs);
    }
    if (!retain_graph) {
      node->inputs.clear();
      node->backward = nullptr;
      node->graph_released = true;
    }
  }
}

}  // namespace dpm
