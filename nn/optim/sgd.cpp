#include "nn/optim/sgd.hpp"

#include <cmath>
#include <stdexcept>

namespace dpm::optim {
namespace {

struct SGDCoefficients {
  float l2_weight_decay;
  float momentum;
  float one_minus_dampening;
  float neg_lr;
};

// param, grad, momentum_buffer: [n] (momentum_buffer unused without momentum). The statement
// order follows _single_tensor_sgd; first_step initialises the buffer with the gradient.
void sgd_kernel(float* param, const float* grad, float* momentum_buffer, int64_t n,
                const SGDCoefficients& c, bool l2, bool use_momentum, bool first_step,
                bool nesterov) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if (l2) g = g + c.l2_weight_decay * param[i];
    if (use_momentum) {
      float buf = first_step ? g : momentum_buffer[i] * c.momentum + c.one_minus_dampening * g;
      momentum_buffer[i] = buf;
      g = nesterov ? g + c.momentum * buf : buf;
    }
    param[i] = param[i] + c.neg_lr * g;
  }
}

std::vector<std::string> sgd_buffer_names(const SGDOptions& options) {
  if (options.momentum == 0) return {};
  return {"momentum_buffer"};
}

}  // namespace

SGD::SGD(nn::ParameterArena& arena, const SGDOptions& options)
    : Optimizer("SGD", arena, options.lr, options.decay_all_parameters, sgd_buffer_names(options)),
      options_(options) {
  require(std::isfinite(options.momentum) && options.momentum >= 0, "momentum", "finite and >= 0",
          options.momentum);
  require(std::isfinite(options.dampening), "dampening", "finite", options.dampening);
  require(std::isfinite(options.weight_decay) && options.weight_decay >= 0, "weight_decay",
          "finite and >= 0", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
    throw std::invalid_argument(
        "SGD: nesterov needs momentum > 0 and dampening == 0, got momentum " +
        std::to_string(options.momentum) + " and dampening " + std::to_string(options.dampening));
}

void SGD::update() {
  const SGDCoefficients c{
      static_cast<float>(options_.weight_decay),
      static_cast<float>(options_.momentum),
      static_cast<float>(1 - options_.dampening),
      static_cast<float>(-lr()),
  };
  const bool decays = options_.weight_decay != 0;
  const bool use_momentum = options_.momentum != 0;
  // PyTorch creates the buffer from the gradient on the step that finds none: the first one.
  const bool first_step = step_count() == 1;
  float* param = arena().values().data();
  const float* grad = arena().grads().data();
  float* momentum_buffer = use_momentum ? buffer_data(0) : nullptr;
  for_each_piece([&](int64_t begin, int64_t end, bool decay) {
    sgd_kernel(param + begin, grad + begin, use_momentum ? momentum_buffer + begin : nullptr,
               end - begin, c, decays && decay, use_momentum, first_step, options_.nesterov);
  });
}

}  // namespace dpm::optim
