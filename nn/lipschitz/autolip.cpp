#include "nn/lipschitz/autolip.hpp"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "nn/attention.hpp"
#include "nn/batchnorm.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/mlp.hpp"
#include "nn/unet.hpp"

namespace dpm::lipschitz {
namespace {

// Raised when a part of the graph has no finite bound; caught by autolip_bound.
struct Unbounded {
  std::string why;
};

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

const nn::Module* find_child(const nn::Module& module, const std::string& name) {
  for (const auto& [child_name, child] : module.named_children())
    if (child_name == name) return child.get();
  return nullptr;
}

const nn::Module& child(const nn::Module& module, const std::string& name) {
  if (const nn::Module* found = find_child(module, name)) return *found;
  throw std::logic_error("autolip_bound: " + module.type_name() + " has no submodule '" + name +
                         "'");
}

// Looks the factors up by name; `t` indexes the time grid.
class Lookup {
 public:
  Lookup(const LayerFactors& factors, size_t t) : factors_(factors), t_(t) {}

  double sigma(const std::string& name) const { return at(factors_.sigma, name, "operator norm"); }

  // Eval-mode BatchNorm; any other normalisation has no bound.
  double norm(const nn::Module& module, const std::string& name) const {
    if (!dynamic_cast<const nn::BatchNorm*>(&module))
      throw Unbounded{name + " is a " + module.type_name() +
                      ", which divides by each sample's own spread: no global Lipschitz bound"};
    return at(factors_.batchnorm, name, "BatchNorm factor");
  }

  double film(const std::string& name) const { return at(factors_.film, name, "FiLM factors")[t_]; }

 private:
  template <typename V>
  const V& at(const std::map<std::string, V>& map, const std::string& name,
              const char* what) const {
    auto it = map.find(name);
    if (it == map.end())
      throw std::invalid_argument("autolip_bound: no " + std::string(what) + " for '" + name + "'");
    return it->second;
  }

  const LayerFactors& factors_;
  size_t t_;
};

// ResidualMLP: in_proj, then h <- h + fc2(SiLU(fc1(SiLU(h + te)))) (or, with FiLM conditioning,
// h + fc2(SiLU(FiLM(fc1(SiLU(h)), te)))), then out_proj(SiLU(h)).
double residual_mlp_bound(const nn::Module& model, const Lookup& f) {
  double bound = f.sigma("in_proj");
  for (const auto& [index, block] : child(model, "blocks").named_children()) {
    const std::string name = join("blocks", index);
    const double film = find_child(*block, "film") ? f.film(join(name, "film")) : 1.0;
    bound *= 1.0 + kSiluLipschitz * f.sigma(join(name, "fc2")) * film * kSiluLipschitz *
                       f.sigma(join(name, "fc1"));
  }
  return bound * kSiluLipschitz * f.sigma("out_proj");
}

// ResBlock: conv2(SiLU(norm2(FiLM(conv1(SiLU(norm1(x))))))) + bypass(x), per unit input bound.
double resblock_factor(const nn::Module& block, const std::string& name, const Lookup& f) {
  const double inner = f.sigma(join(name, "conv2")) * kSiluLipschitz *
                       f.norm(child(block, "norm2"), join(name, "norm2")) *
                       f.film(join(name, "film")) * f.sigma(join(name, "conv1")) * kSiluLipschitz *
                       f.norm(child(block, "norm1"), join(name, "norm1"));
  return inner + (find_child(block, "bypass") ? f.sigma(join(name, "bypass")) : 1.0);
}

// The U-Net's forward (nn/unet.cpp) with each value replaced by its Lipschitz bound in x.
double unet_bound(const nn::UNet& model, const Lookup& f) {
  if (model.options().attention)
    throw Unbounded{"mid_attention: dot-product self-attention is not globally Lipschitz"};
  const int dims = model.options().spatial_dims;
  // The U-Net pools and upsamples by 2 (nn/unet.cpp).
  const double pool = avg_pool_lipschitz(2, dims), upsample = upsample_nearest_lipschitz(2, dims);

  double h = f.sigma("init_conv");
  std::vector<double> skips{h};
  for (const auto& [index, level] : child(model, "down").named_children()) {
    const std::string level_name = join("down", index);
    for (const auto& [b, block] : child(*level, "blocks").named_children()) {
      h *= resblock_factor(*block, join(join(level_name, "blocks"), b), f);
      skips.push_back(h);
    }
    if (find_child(*level, "pool")) {
      h *= pool;
      skips.push_back(h);
    }
  }
  h *= resblock_factor(child(model, "mid"), "mid", f);
  for (const auto& [index, level] : child(model, "up").named_children()) {
    const std::string level_name = join("up", index);
    for (const auto& [b, block] : child(*level, "blocks").named_children()) {
      if (skips.empty()) throw std::logic_error("autolip_bound: the U-Net's skip stack is empty");
      const double skip = skips.back();
      skips.pop_back();
      h = resblock_factor(*block, join(join(level_name, "blocks"), b), f) * std::hypot(h, skip);
    }
    if (find_child(*level, "upsample")) h *= upsample;
  }
  return f.sigma("out_conv") * kSiluLipschitz * f.norm(child(model, "out_norm"), "out_norm") * h;
}

}  // namespace

AutoLipBound autolip_bound(const nn::Module& model, const LayerFactors& factors) {
  const auto* mlp = dynamic_cast<const nn::ResidualMLP*>(&model);
  const auto* unet = dynamic_cast<const nn::UNet*>(&model);
  AutoLipBound result;
  if (!mlp && !unet) {
    result.note = "no AutoLip rule for a " + model.type_name() + " (only ResidualMLP and UNet)";
    return result;
  }
  try {
    for (size_t t = 0; t < factors.grid_size; ++t) {
      const Lookup lookup(factors, t);
      result.by_t.push_back(mlp ? residual_mlp_bound(model, lookup) : unet_bound(*unet, lookup));
    }
    result.note = mlp ? "AutoLip over the ResidualMLP graph (residual: 1 + L_g)"
                      : "AutoLip over the U-Net graph (residual: L_g + L_bypass; skip concat: "
                        "sqrt(L1^2 + L2^2)), BatchNorm in eval mode";
  } catch (const Unbounded& unbounded) {
    result.by_t.clear();
    result.note = "no finite bound: " + unbounded.why;
  }
  return result;
}

}  // namespace dpm::lipschitz
