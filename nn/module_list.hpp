#pragma once
// ModuleList<M>: submodules of one type named "0", "1", ... (PyTorch's nn.ModuleList), for
// modules whose forward is not a plain chain (the U-Net's blocks take a time embedding).
#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace dpm::nn {

template <typename M>
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}

  void push_back(std::shared_ptr<M> module) {
    modules_.push_back(register_module(std::to_string(modules_.size()), std::move(module)));
  }
  size_t size() const { return modules_.size(); }
  M& operator[](size_t i) { return *modules_.at(i); }
  auto begin() { return modules_.begin(); }
  auto end() { return modules_.end(); }

 private:
  std::vector<std::shared_ptr<M>> modules_;
};

}  // namespace dpm::nn
