#include "nn/shape_trace.hpp"

namespace dpm::nn {

namespace detail {
thread_local ShapeRecord* t_shape_trace = nullptr;
}  // namespace detail

ShapeTrace::ShapeTrace() : previous_(detail::t_shape_trace) {
  detail::t_shape_trace = &shapes_;
}
ShapeTrace::~ShapeTrace() {
  detail::t_shape_trace = previous_;
}

}  // namespace dpm::nn
