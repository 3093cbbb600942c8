#include "nn/lipschitz/autolip.hpp"

namespace dpm::lipschitz {

template <typename V>
const V& LayerNorms::at(const std::unordered_map<const nn::Module*, V>& map,
                        const nn::Module& layer, const char* what) const {
  auto it = map.find(&layer);
  if (it == map.end())
    throw std::invalid_argument("autolip_bound: no " + std::string(what) + " for '" +
                                name(layer) + "' (" + layer.type_name() + ")");
  return it->second;
}

double LayerNorms::operator_norm(const nn::Module& layer) const {
  return at(factors_.sigma, layer, "operator norm");
}

double LayerNorms::batchnorm(const nn::Module& layer) const {
  return at(factors_.batchnorm, layer, "BatchNorm factor");
}

double LayerNorms::film(const nn::Module& layer) const {
  return at(factors_.film, layer, "FiLM factors")[t_];
}

std::string LayerNorms::name(const nn::Module& layer) const {
  auto it = factors_.names.find(&layer);
  return it == factors_.names.end() || it->second.empty() ? "the model" : it->second;
}

Unbounded::Unbounded(const nn::Module& module, const std::string& why)
    : std::runtime_error("a " + module.type_name() + ", which " + why),
      module_(module),
      why_(why) {}

AutoLipBound autolip_bound(const nn::Module& model, const LayerFactors& factors) {
  AutoLipBound result;
  try {
    for (size_t t = 0; t < factors.grid_size; ++t)
      result.by_t.push_back(model.lipschitz_bound(LayerNorms(factors, t)));
    result.note = model.lipschitz_bound_note();
  } catch (const Unbounded& unbounded) {
    result.by_t.clear();
    result.note = "no finite bound: " + LayerNorms(factors, 0).name(unbounded.module()) +
                  " is a " + unbounded.module().type_name() + ", which " + unbounded.why();
  }
  return result;
}

}  // namespace dpm::lipschitz
