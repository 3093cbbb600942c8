#pragma once
// Adam and AdamW over a ParameterArena, with PyTorch's semantics (torch.optim.Adam/AdamW,
// foreach=False, amsgrad=False): every element is computed in float in the same order as the
// single-tensor implementation, with the scalar coefficients computed in double like Python does.
#include <utility>

#include "nn/optim/optimizer.hpp"

namespace dpm::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;
  // Adam adds weight_decay * param to the gradient (L2); AdamW multiplies the parameter by
  // 1 - lr * weight_decay before the update (decoupled). PyTorch's AdamW default is 1e-2.
  double weight_decay = 0;
  // false: decay only slots registered with weight_decay = true, as PyTorch does with a second
  // parameter group of weight_decay 0 for biases and normalisation parameters.
  bool decay_all_parameters = false;
};

// State tensors: "exp_avg" and "exp_avg_sq".
class Adam : public Optimizer {
 public:
  Adam(nn::ParameterArena& arena, const AdamOptions& options);
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(const char* name, nn::ParameterArena& arena, const AdamOptions& options,
       bool decoupled_weight_decay);

 private:
  void update() override;

  AdamOptions options_;
  bool decoupled_weight_decay_;
};

class AdamW : public Adam {
 public:
  AdamW(nn::ParameterArena& arena, const AdamOptions& options);
};

}  // namespace dpm::optim
