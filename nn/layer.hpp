#pragma once
// Layer: a Module with one tensor input and one tensor output, so layers compose in a
// Sequential. Modules with more inputs (ResBlock: x and a time embedding) derive from Module
// directly and declare their own forward.
#include <string>
#include <utility>

#include "nn/module.hpp"

namespace dpm::nn {

class Layer : public Module {
 public:
  explicit Layer(std::string type_name) : Module(std::move(type_name)) {}
  virtual Variable forward(const Variable& x) = 0;
  Variable operator()(const Variable& x) { return forward(x); }
};

}  // namespace dpm::nn
