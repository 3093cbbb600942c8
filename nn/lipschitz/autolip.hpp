#pragma once
// AutoLip-style upper bounds on the Lipschitz constant of a whole network in x at a fixed t
// (docs/protocol.md, "Lipschitz facts"). Each module answers its own bound from the measured
// norms of its layers (nn::Module::lipschitz_bound), by the rules gathered here: a linear layer
// gives its operator norm, activations, pooling, upsampling, eval-mode BatchNorm and FiLM their
// constants (nn/lipschitz/constants.hpp), a composition multiplies, a residual block adds its
// branch's and its shortcut's bounds (h + g(h): 1 + L_g), a concatenation of two branches gives
// sqrt(L1^2 + L2^2). The time path does not enter: at fixed t the time embedding is a constant.
// The plain product of all layer norms is no bound for residual nets (it drops the identity
// paths), hence the composition along the graph.
//
// GroupNorm (it divides by each sample's own spread) and self-attention (dot-product attention is
// not globally Lipschitz) have no finite bound: they throw Unbounded, and the bound says why.
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/module.hpp"

namespace dpm::lipschitz {

// The measured factors a bound is built from, per layer.
struct LayerFactors {
  std::unordered_map<const nn::Module*, double> sigma;      // Linear and Conv operator norms
  std::unordered_map<const nn::Module*, double> batchnorm;  // eval-mode factors
  // FiLM factors, one per point of the time grid (every vector has grid_size entries).
  std::unordered_map<const nn::Module*, std::vector<double>> film;
  size_t grid_size = 1;
  // Dotted module names ("down.0.blocks.1.conv1"), for messages.
  std::unordered_map<const nn::Module*, std::string> names;
};

// What a module's lipschitz_bound reads: the factors of its layers at one point of the time grid.
class LayerNorms {
 public:
  LayerNorms(const LayerFactors& factors, size_t t) : factors_(factors), t_(t) {}

  double operator_norm(const nn::Module& layer) const;
  double batchnorm(const nn::Module& layer) const;
  double film(const nn::Module& layer) const;  // at this grid point
  // The layer's dotted name, or "the model" for one not listed.
  std::string name(const nn::Module& layer) const;

 private:
  template <typename V>
  const V& at(const std::unordered_map<const nn::Module*, V>& map, const nn::Module& layer,
              const char* what) const;

  const LayerFactors& factors_;
  size_t t_;
};

// Thrown by lipschitz_bound for a module with no finite bound.
class Unbounded : public std::runtime_error {
 public:
  // why completes "<the module's name> is a <its type>, which ...".
  Unbounded(const nn::Module& module, const std::string& why);
  const nn::Module& module() const { return module_; }
  const std::string& why() const { return why_; }

 private:
  const nn::Module& module_;
  std::string why_;
};

// x + g(x) or bypass(x) + g(x): L_g + L_shortcut (1 for the identity).
inline double residual_bound(double branch, double shortcut) {
  return branch + shortcut;
}
// [a(x), b(x)] stacked: ||(a, b)|| <= sqrt(L_a^2 + L_b^2).
inline double concat_bound(double a, double b) {
  return std::hypot(a, b);
}

struct AutoLipBound {
  std::vector<double> by_t;  // one bound per time-grid point; empty when there is none
  std::string note;          // what the bound covers, or why there is none
};

// model.lipschitz_bound at every point of the factors' time grid.
AutoLipBound autolip_bound(const nn::Module& model, const LayerFactors& factors);

}  // namespace dpm::lipschitz
