#pragma once
// ShapeTrace: records the output shape of every module that runs while it is alive on this
// thread (summary() uses it). Every forward ends with `return trace_output(*this, y);`, which
// is one thread-local pointer test when no trace is active.
#include <unordered_map>

#include "nn/module.hpp"

namespace dpm::nn {

using ShapeRecord = std::unordered_map<const Module*, Shape>;

namespace detail {
extern thread_local ShapeRecord* t_shape_trace;
}  // namespace detail

inline const Variable& trace_output(const Module& module, const Variable& output) {
  if (detail::t_shape_trace) (*detail::t_shape_trace)[&module] = output.shape();
  return output;
}

class ShapeTrace {
 public:
  ShapeTrace();
  ~ShapeTrace();
  ShapeTrace(const ShapeTrace&) = delete;
  ShapeTrace& operator=(const ShapeTrace&) = delete;

  // The last output shape of each module that ran (a module called twice keeps the last).
  const ShapeRecord& shapes() const { return shapes_; }

 private:
  ShapeRecord shapes_;
  ShapeRecord* previous_;
};

}  // namespace dpm::nn
