#include "autograd/ops/norm.hpp"

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/kernels/norm.hpp"

namespace dpm {
namespace {

// x [B, C, *] as the kernels' [B, C, S]; throws unless x has at least 2 dims.
NormDims norm_dims(const char* op, const Variable& x) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": input is undefined");
  if (x.ndim() < 2)
    throw std::invalid_argument(std::string(op) + ": input must be [B, C, *] (at least 2 dims), " +
                                "got shape " + x.shape().str());
  NormDims d;
  d.batch = x.size(0);
  d.channels = x.size(1);
  for (int i = 2; i < x.ndim(); ++i) d.spatial *= x.size(i);
  return d;
}

// A per-channel [C] tensor (weight, bias, running statistic) must match the input's channels.
void check_per_channel(const char* op, const char* name, const Tensor& t, const Shape& input) {
  if (t.shape() != Shape{input[1]})
    throw std::invalid_argument(std::string(op) + ": " + name + " has shape " + t.shape().str() +
                                ", expected [" + std::to_string(input[1]) +
                                "] (one per channel of input " + input.str() + ")");
}

// The tape node's inputs: x, then weight and bias when defined (the tape holds only defined
// Variables), with where each of them sits.
struct NormInputs {
  std::vector<Variable> inputs;
  int weight = -1, bias = -1;
};

NormInputs norm_inputs(const char* op, const Variable& x, const Variable& weight,
                       const Variable& bias) {
  NormInputs n{{x}};
  if (weight.defined()) {
    check_per_channel(op, "weight", weight.data(), x.shape());
    n.weight = static_cast<int>(n.inputs.size());
    n.inputs.push_back(weight);
  }
  if (bias.defined()) {
    check_per_channel(op, "bias", bias.data(), x.shape());
    n.bias = static_cast<int>(n.inputs.size());
    n.inputs.push_back(bias);
  }
  return n;
}

const float* data_or_null(const Tensor& t) {
  return t.defined() ? t.data() : nullptr;
}

Tensor contiguous_or_undefined(const Variable& v) {
  return v.defined() ? v.data().contiguous() : Tensor();
}

// The gradient buffer of inputs[index] to accumulate into, or null when it needs none.
float* grad_or_null(const char* op, std::vector<Variable>& inputs, int index) {
  if (index < 0 || !inputs[static_cast<size_t>(index)].requires_grad()) return nullptr;
  Tensor& grad = inputs[static_cast<size_t>(index)].grad_buffer();
  grad.require_contiguous(op);
  return grad.data();
}

// batch_norm in training with a reducer, its arguments checked: the statistics, and in backward
// the means of dy and dy * xhat, are the group's (norm.hpp).
Variable synchronised_batch_norm(const Variable& x, const NormDims& d, NormInputs n,
                                 Tensor running_mean, Tensor running_var, const Variable& weight,
                                 const Variable& bias, float momentum, float eps,
                                 const StatisticsReducer& reduce) {
  const char* op = "batch_norm";
  Tensor input = x.data().contiguous();
  Tensor gamma = contiguous_or_undefined(weight);
  Tensor beta = contiguous_or_undefined(bias);
  const size_t channels = static_cast<size_t>(d.channels);

  // stats [C, 3]: this process's {n, sum x, sum x^2} per channel, then the group's.
  std::vector<double> stats(3 * channels);
  batch_norm_sync_local_stats(stats.data(), input.data(), d);
  reduce(stats.data(), static_cast<int64_t>(stats.size()));
  for (size_t c = 0; c < channels; ++c)
    if (!(stats[3 * c] >= 2.0)) {  // also catches a NaN from the reducer
      std::ostringstream message;
      message << "batch_norm: synchronised training needs more than one value per channel over "
                 "the group, got "
              << stats[3 * c] << " for channel " << c << " (this process's input shape "
              << x.shape().str() << ")";
      throw std::invalid_argument(message.str());
    }

  Tensor out = Tensor::empty(x.shape());
  Tensor mean = Tensor::empty({d.channels}), var = Tensor::empty({d.channels});
  Tensor inv_std = Tensor::empty({d.channels});
  batch_norm_sync_forward(out.data(), mean.data(), var.data(), inv_std.data(), stats.data(),
                          input.data(), data_or_null(gamma), data_or_null(beta), d, eps);
  if (running_mean.defined())
    batch_norm_sync_update_running(running_mean.data(), running_var.data(), mean.data(), var.data(),
                                   stats.data(), d, momentum);

  BackwardFn backward = [input, mean, inv_std, gamma, d, stats = std::move(stats), reduce,
                         n_weight = n.weight, n_bias = n.bias](const Tensor& grad_output,
                                                               std::vector<Variable>& inputs) {
    Tensor dout = grad_output.contiguous();
    // Called whenever backward runs, even when x needs no gradient: the reducer is collective.
    std::vector<double> local(2 * static_cast<size_t>(d.channels));
    batch_norm_sync_grad_sums(local.data(), dout.data(), input.data(), mean.data(), inv_std.data(),
                              d);
    std::vector<double> group = local;
    reduce(group.data(), static_cast<int64_t>(group.size()));
    batch_norm_sync_backward(
        grad_or_null("batch_norm", inputs, 0), grad_or_null("batch_norm", inputs, n_weight),
        grad_or_null("batch_norm", inputs, n_bias), dout.data(), input.data(), mean.data(),
        inv_std.data(), data_or_null(gamma), local.data(), group.data(), stats.data(), d);
  };
  return Variable::make_result(std::move(out), std::move(n.inputs), std::move(backward), op);
}

}  // namespace

Variable batch_norm(const Variable& x, Tensor running_mean, Tensor running_var,
                    const Variable& weight, const Variable& bias, bool training, float momentum,
                    float eps, const StatisticsReducer& reduce) {
  const char* op = "batch_norm";
  NormDims d = norm_dims(op, x);
  NormInputs n = norm_inputs(op, x, weight, bias);
  if (running_mean.defined() != running_var.defined())
    throw std::invalid_argument(
        "batch_norm: running_mean and running_var must both be defined or "
        "both undefined");
  bool has_running = running_mean.defined();
  if (has_running) {
    check_per_channel(op, "running_mean", running_mean, x.shape());
    check_per_channel(op, "running_var", running_var, x.shape());
    running_mean.require_contiguous("batch_norm (running_mean is updated in place)");
    running_var.require_contiguous("batch_norm (running_var is updated in place)");
  }
  const bool synchronised = training && static_cast<bool>(reduce);
  if (synchronised)
    return synchronised_batch_norm(x, d, std::move(n), std::move(running_mean),
                                   std::move(running_var), weight, bias, momentum, eps, reduce);
  if (training && d.batch * d.spatial < 2)
    throw std::invalid_argument(
        "batch_norm: training needs more than one value per channel, got "
        "input shape " +
        x.shape().str());
  if (!training && !has_running)
    throw std::invalid_argument(
        "batch_norm: eval mode (training = false) needs running_mean and "
        "running_var, got undefined tensors");

  Tensor input = x.data().contiguous();
  Tensor gamma = contiguous_or_undefined(weight);
  Tensor beta = contiguous_or_undefined(bias);
  Tensor out = Tensor::empty(x.shape());
  Tensor inv_std = Tensor::empty({d.channels});
  Tensor mean;
  if (training) {
    mean = Tensor::empty({d.channels});
    Tensor var = Tensor::empty({d.channels});
    batch_norm_forward_train(out.data(), mean.data(), var.data(), inv_std.data(), input.data(),
                             data_or_null(gamma), data_or_null(beta), d, eps);
    if (has_running)
      batch_norm_update_running(running_mean.data(), running_var.data(), mean.data(), var.data(), d,
                                momentum);
  } else {
    // A copy: later training calls update the running mean in place before this backward runs.
    mean = running_mean.clone();
    batch_norm_forward_eval(out.data(), inv_std.data(), input.data(), mean.data(),
                            running_var.data(), data_or_null(gamma), data_or_null(beta), d, eps);
  }

  BackwardFn backward = [input, mean, inv_std, gamma, d, training, n_weight = n.weight,
                         n_bias = n.bias](const Tensor& grad_output,
                                          std::vector<Variable>& inputs) {
    Tensor dout = grad_output.contiguous();
    batch_norm_backward(grad_or_null("batch_norm", inputs, 0),
                        grad_or_null("batch_norm", inputs, n_weight),
                        grad_or_null("batch_norm", inputs, n_bias), dout.data(), input.data(),
                        mean.data(), inv_std.data(), data_or_null(gamma), d, training);
  };
  return Variable::make_result(std::move(out), std::move(n.inputs), std::move(backward), op);
}

Variable group_norm(const Variable& x, int groups, const Variable& weight, const Variable& bias,
                    float eps) {
  const char* op = "group_norm";
  NormDims d = norm_dims(op, x);
  NormInputs n = norm_inputs(op, x, weight, bias);
  if (groups < 1 || d.channels % groups != 0)
    throw std::invalid_argument("group_norm: groups must be positive and divide the " +
                                std::to_string(d.channels) + " channels of input " +
                                x.shape().str() + ", got groups = " + std::to_string(groups));

  Tensor input = x.data().contiguous();
  Tensor gamma = contiguous_or_undefined(weight);
  Tensor beta = contiguous_or_undefined(bias);
  Tensor out = Tensor::empty(x.shape());
  Tensor mean = Tensor::empty({d.batch, groups}), inv_std = Tensor::empty({d.batch, groups});
  group_norm_forward(out.data(), mean.data(), inv_std.data(), input.data(), data_or_null(gamma),
                     data_or_null(beta), d, groups, eps);

  BackwardFn backward = [input, mean, inv_std, gamma, d, groups, n_weight = n.weight,
                         n_bias = n.bias](const Tensor& grad_output,
                                          std::vector<Variable>& inputs) {
    Tensor dout = grad_output.contiguous();
    group_norm_backward(grad_or_null("group_norm", inputs, 0),
                        grad_or_null("group_norm", inputs, n_weight),
                        grad_or_null("group_norm", inputs, n_bias), dout.data(), input.data(),
                        mean.data(), inv_std.data(), data_or_null(gamma), d, groups);
  };
  return Variable::make_result(std::move(out), std::move(n.inputs), std::move(backward), op);
}

}  // namespace dpm
