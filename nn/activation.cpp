#include "nn/activation.hpp"

#include "autograd/ops/activation.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {

Variable PointwiseActivation::forward(const Variable& x) {
  return trace_output(*this, function_(x));
}

SiLU::SiLU() : PointwiseActivation("SiLU", &dpm::silu) {}
ReLU::ReLU() : PointwiseActivation("ReLU", &dpm::relu) {}
GELU::GELU() : PointwiseActivation("GELU", &dpm::gelu) {}
Tanh::Tanh() : PointwiseActivation("Tanh", &dpm::tanh) {}
Sigmoid::Sigmoid() : PointwiseActivation("Sigmoid", &dpm::sigmoid) {}

}  // namespace dpm::nn
