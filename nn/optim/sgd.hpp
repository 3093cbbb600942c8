#pragma once
// SGD with optional momentum and Nesterov momentum over a ParameterArena, with PyTorch's
// semantics (torch.optim.SGD, foreach=False): the momentum buffer starts as a copy of the first
// step's gradient, and every element is computed in float in the single-tensor order.
#include "nn/optim/optimizer.hpp"

namespace dpm::optim {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: weight_decay * param is added to the gradient
  bool nesterov = false;    // needs momentum > 0 and dampening == 0
  // false: decay only slots registered with weight_decay = true (see AdamOptions).
  bool decay_all_parameters = false;
};

// State tensors: "momentum_buffer" when momentum != 0, none otherwise.
class SGD : public Optimizer {
 public:
  SGD(nn::ParameterArena& arena, const SGDOptions& options);
  const SGDOptions& options() const { return options_; }

 private:
  void update() override;

  SGDOptions options_;
};

}  // namespace dpm::optim
