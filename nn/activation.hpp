#pragma once
// Activation layers (no parameters): SiLU, ReLU, GELU (exact), Tanh, Sigmoid.
#include "nn/layer.hpp"

namespace dpm::nn {

// One pointwise function as a layer; the named classes below only pick the function.
class PointwiseActivation : public Layer {
 public:
  using Function = Variable (*)(const Variable&);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms&) const override { return lipschitz_; }

 protected:
  // lipschitz: max_x |f'(x)|.
  PointwiseActivation(const char* type_name, Function function, double lipschitz)
      : Layer(type_name), function_(function), lipschitz_(lipschitz) {}

 private:
  Function function_;
  double lipschitz_;
};

class SiLU : public PointwiseActivation {
 public:
  SiLU();
};
class ReLU : public PointwiseActivation {
 public:
  ReLU();
};
class GELU : public PointwiseActivation {
 public:
  GELU();
};
class Tanh : public PointwiseActivation {
 public:
  Tanh();
};
class Sigmoid : public PointwiseActivation {
 public:
  Sigmoid();
};

}  // namespace dpm::nn
