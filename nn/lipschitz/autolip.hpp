#pragma once
// AutoLip-style upper bounds on the Lipschitz constant of a whole network in x at a fixed t,
// propagated through its graph with the rules of docs/protocol.md, Lipschitz facts: a linear layer
// multiplies by its operator norm, a sum adds (a residual block h + g(h) gives 1 + L_g), a
// concatenation of two branches gives sqrt(L1^2 + L2^2), activations, pooling, upsampling,
// eval-mode BatchNorm and FiLM multiply by their constants (nn/lipschitz/constants.hpp). The time
// path does not enter: at fixed t the time embedding is a constant. The plain product of all layer
// norms is no bound for residual nets (it drops the identity paths), hence the graph walk.
//
// Rules exist for the ResidualMLP and the U-Net (docs/protocol.md, The U-Net). There is no finite
// bound with GroupNorm (it divides by each sample's own spread) or self-attention (dot-product
// attention is not globally Lipschitz); those report none and say why.
#include <map>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace dpm::lipschitz {

// The per-layer factors a bound is built from, by dotted module name ("down.0.blocks.1.conv1").
struct LayerFactors {
  std::map<std::string, double> sigma;      // Linear and Conv operator norms
  std::map<std::string, double> batchnorm;  // eval-mode factors
  // FiLM factors, one per point of the time grid (every vector has grid_size entries).
  std::map<std::string, std::vector<double>> film;
  size_t grid_size = 1;
};

struct AutoLipBound {
  std::vector<double> by_t;  // one bound per time-grid point; empty when there is none
  std::string note;          // what the bound covers, or why there is none
};

AutoLipBound autolip_bound(const nn::Module& model, const LayerFactors& factors);

}  // namespace dpm::lipschitz
