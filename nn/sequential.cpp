#include "nn/sequential.hpp"

#include <string>

#include "nn/shape_trace.hpp"

namespace dpm::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Layer>> layers) : Sequential() {
  for (const auto& layer : layers) push_back(layer);
}

void Sequential::push_back(std::shared_ptr<Layer> layer) {
  layers_.push_back(register_module(std::to_string(layers_.size()), std::move(layer)));
}

Variable Sequential::forward(const Variable& x) {
  Variable h = x;
  for (auto& layer : layers_) h = layer->forward(h);
  return trace_output(*this, h);
}

double Sequential::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  double bound = 1.0;
  for (const auto& layer : layers_) bound *= layer->lipschitz_bound(norms);
  return bound;
}

}  // namespace dpm::nn
