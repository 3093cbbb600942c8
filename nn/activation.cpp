#include "nn/activation.hpp"

#include "autograd/ops/activation.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

Variable PointwiseActivation::forward(const Variable& x) {
  return trace_output(*this, function_(x));
}

SiLU::SiLU() : PointwiseActivation("SiLU", &dpm::silu, lipschitz::kSiluLipschitz) {}
ReLU::ReLU() : PointwiseActivation("ReLU", &dpm::relu, 1.0) {}
GELU::GELU() : PointwiseActivation("GELU", &dpm::gelu, lipschitz::kGeluLipschitz) {}
Tanh::Tanh() : PointwiseActivation("Tanh", &dpm::tanh, 1.0) {}
// sigmoid' = s (1 - s) <= 1/4, at 0.
Sigmoid::Sigmoid() : PointwiseActivation("Sigmoid", &dpm::sigmoid, 0.25) {}

}  // namespace dpm::nn
