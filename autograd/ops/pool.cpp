#include "autograd/ops/pool.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/kernels/pool.hpp"
#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

using PoolKernel = void (*)(float*, const float*, const PoolGeometry&);

// One of the four ops: its name, its 1-D or 2-D layout, and whether it shrinks or grows the grid.
struct PoolKind {
  const char* op;
  int spatial_dims;  // 1 or 2; a 1-D op is the 2-D kernel with height 1
  bool downsample;
  PoolKernel forward, backward;
};

PoolGeometry pool_geometry(const PoolKind& kind, const Variable& x, int factor) {
  const std::string op = kind.op;
  if (!x.defined()) throw std::invalid_argument(op + ": input is undefined");
  const int rank = kind.spatial_dims + 2;
  if (x.ndim() != rank)
    throw std::invalid_argument(
        op + ": input must be " + (kind.spatial_dims == 1 ? "[B, C, L]" : "[B, C, H, W]") +
        " (rank " + std::to_string(rank) + "), got shape " + x.shape().str());
  if (factor < 1)
    throw std::invalid_argument(op + ": factor must be at least 1, got " + std::to_string(factor));
  PoolGeometry g;
  g.planes = x.size(0) * x.size(1);
  g.in_w = x.size(-1);
  g.factor_w = factor;
  if (kind.spatial_dims == 2) {
    g.in_h = x.size(-2);
    g.factor_h = factor;
  }
  if (kind.downsample && (g.in_h < g.factor_h || g.in_w < g.factor_w))
    throw std::invalid_argument(op + ": input " + x.shape().str() +
                                " is smaller than the pooling factor " + std::to_string(factor) +
                                " (the output would be empty)");
  return g;
}

Shape output_shape(const PoolKind& kind, const Shape& input, const PoolGeometry& g) {
  Shape out = input;
  const int w = kind.spatial_dims + 1;
  out[w] = kind.downsample ? g.in_w / g.factor_w : g.in_w * g.factor_w;
  if (kind.spatial_dims == 2) out[2] = kind.downsample ? g.in_h / g.factor_h : g.in_h * g.factor_h;
  return out;
}

Variable resample(const PoolKind& kind, const Variable& x, int factor) {
  const PoolGeometry g = pool_geometry(kind, x, factor);
  Tensor xc = x.data().contiguous();
  Tensor out = Tensor::empty(output_shape(kind, x.shape(), g));
  kind.forward(out.data(), xc.data(), g);
  PoolKernel backward = kind.backward;
  return Variable::make_result(
      std::move(out), {x},
      [g, backward](const Tensor& grad_output, std::vector<Variable>& inputs) {
        if (!inputs[0].requires_grad()) return;
        Tensor dout = grad_output.contiguous();
        detail::accumulate_grad(inputs[0], [&](float* dinp) { backward(dinp, dout.data(), g); });
      },
      kind.op);
}

}  // namespace

Variable avg_pool1d(const Variable& x, int factor) {
  return resample({"avg_pool1d", 1, true, avg_pool2d_forward, avg_pool2d_backward}, x, factor);
}

Variable avg_pool2d(const Variable& x, int factor) {
  return resample({"avg_pool2d", 2, true, avg_pool2d_forward, avg_pool2d_backward}, x, factor);
}

Variable upsample_nearest1d(const Variable& x, int factor) {
  return resample(
      {"upsample_nearest1d", 1, false, upsample_nearest2d_forward, upsample_nearest2d_backward}, x,
      factor);
}

Variable upsample_nearest2d(const Variable& x, int factor) {
  return resample(
      {"upsample_nearest2d", 2, false, upsample_nearest2d_forward, upsample_nearest2d_backward}, x,
      factor);
}

}  // namespace dpm
