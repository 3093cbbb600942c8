#include "nn/optim/adam.hpp"

#include <cmath>

namespace dpm::optim {
namespace {

// The float coefficients of one step, converted from Python-style double scalars.
struct AdamCoefficients {
  float l2_weight_decay;  // grad += this * param (Adam), 0 when not decayed
  float param_scale;      // param *= this first (AdamW), 1 when not decayed
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float bias_correction2_sqrt;
  float eps;
  float neg_step_size;  // -lr / (1 - beta1^step)
};

// at::lerp's scalar formula: the branch keeps the result exact at weight 0 and 1.
inline float lerp(float start, float end, float weight) {
  return std::abs(weight) < 0.5f ? start + weight * (end - start)
                                 : end - (end - start) * (1.0f - weight);
}

// param, grad, exp_avg, exp_avg_sq: [n]. The statement order follows _single_tensor_adam.
void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const AdamCoefficients& c, bool l2, bool decoupled) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if (l2) g = g + c.l2_weight_decay * param[i];
    if (decoupled) param[i] = param[i] * c.param_scale;
    exp_avg[i] = lerp(exp_avg[i], g, c.one_minus_beta1);
    exp_avg_sq[i] = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    float denom = std::sqrt(exp_avg_sq[i]) / c.bias_correction2_sqrt + c.eps;
    param[i] = param[i] + c.neg_step_size * exp_avg[i] / denom;
  }
}

}  // namespace

Adam::Adam(nn::ParameterArena& arena, const AdamOptions& options)
    : Adam("Adam", arena, options, false) {}

AdamW::AdamW(nn::ParameterArena& arena, const AdamOptions& options)
    : Adam("AdamW", arena, options, true) {}

Adam::Adam(const char* name, nn::ParameterArena& arena, const AdamOptions& options,
           bool decoupled_weight_decay)
    : Optimizer(name, arena, options.lr, options.decay_all_parameters, {"exp_avg", "exp_avg_sq"}),
      options_(options),
      decoupled_weight_decay_(decoupled_weight_decay) {
  auto [beta1, beta2] = options.betas;
  require(beta1 >= 0 && beta1 < 1, "betas.first", "in [0, 1)", beta1);
  require(beta2 >= 0 && beta2 < 1, "betas.second", "in [0, 1)", beta2);
  require(std::isfinite(options.eps) && options.eps >= 0, "eps", "finite and >= 0", options.eps);
  require(std::isfinite(options.weight_decay) && options.weight_decay >= 0, "weight_decay",
          "finite and >= 0", options.weight_decay);
}

void Adam::update() {
  auto [beta1, beta2] = options_.betas;
  const double step = static_cast<double>(step_count());
  const double bias_correction1 = 1 - std::pow(beta1, step);
  const double bias_correction2 = 1 - std::pow(beta2, step);
  const double wd = options_.weight_decay;
  const AdamCoefficients c{
      static_cast<float>(wd),           static_cast<float>(1 - lr() * wd),
      static_cast<float>(1 - beta1),    static_cast<float>(beta2),
      static_cast<float>(1 - beta2),    static_cast<float>(std::sqrt(bias_correction2)),
      static_cast<float>(options_.eps), static_cast<float>(-(lr() / bias_correction1)),
  };
  // PyTorch skips the weight-decay statement entirely when weight_decay is 0.
  const bool decays = wd != 0;
  float* param = arena().values().data();
  const float* grad = arena().grads().data();
  float* exp_avg = buffer_data(0);
  float* exp_avg_sq = buffer_data(1);
  for_each_piece([&](int64_t begin, int64_t end, bool decay) {
    bool decay_here = decays && decay;
    adam_kernel(param + begin, grad + begin, exp_avg + begin, exp_avg_sq + begin, end - begin, c,
                decay_here && !decoupled_weight_decay_, decay_here && decoupled_weight_decay_);
  });
}

}  // namespace dpm::optim
