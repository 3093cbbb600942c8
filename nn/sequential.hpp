#pragma once
// Sequential: layers applied in order, named "0", "1", ... like PyTorch's nn.Sequential.
#include <initializer_list>
#include <memory>
#include <vector>

#include "nn/layer.hpp"

namespace dpm::nn {

class Sequential : public Layer {
 public:
  Sequential() : Layer("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Layer>> layers);

  void push_back(std::shared_ptr<Layer> layer);
  Variable forward(const Variable& x) override;
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;  // the product

  size_t size() const { return layers_.size(); }
  Layer& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace dpm::nn
