#include "autograd/ops/conv.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/ops/detail.hpp"

namespace dpm {
namespace {

// What distinguishes conv1d from conv2d: the kernels see a 1-D conv as height 1.
struct ConvKind {
  const char* op;
  int spatial_dims;  // 1 or 2
  const char* input_layout;
  const char* weight_layout;
  const char* output_layout;
};

ConvKind conv1d_kind(const char* op) {
  return {op, 1, "[B, Ci, L]", "[Co, Ci, K]", "[B, Co, Lout]"};
}
ConvKind conv2d_kind(const char* op) {
  return {op, 2, "[B, Ci, H, W]", "[Co, Ci, KH, KW]", "[B, Co, OH, OW]"};
}

void check_rank(const ConvKind& kind, const char* name, const char* layout, const Tensor& t) {
  if (!t.defined())
    throw std::invalid_argument(std::string(kind.op) + ": " + name + " is undefined");
  if (t.ndim() != kind.spatial_dims + 2)
    throw std::invalid_argument(std::string(kind.op) + ": " + name + " must be " + layout +
                                " (rank " + std::to_string(kind.spatial_dims + 2) +
                                "), got shape " + t.shape().str());
}

// The kernels' geometry of a conv of weight [Co, Ci, (KH,) KW] over a batch of inputs of
// in_h x in_w (in_h = 1 for conv1d); the caller has checked the weight's rank.
ConvGeometry make_geometry(const ConvKind& kind, int64_t batch, int64_t in_h, int64_t in_w,
                           const Shape& weight, int stride, int padding, PaddingMode mode) {
  if (stride < 1)
    throw std::invalid_argument(std::string(kind.op) + ": stride must be at least 1, got " +
                                std::to_string(stride));
  if (padding < 0)
    throw std::invalid_argument(std::string(kind.op) + ": padding must be non-negative, got " +
                                std::to_string(padding));
  ConvGeometry g;
  g.batch = batch;
  g.in_channels = weight[1];
  g.out_channels = weight[0];
  g.padding = mode;
  g.in_w = in_w;
  g.kernel_w = weight.size(-1);
  g.stride_w = stride;
  g.pad_w = padding;
  if (kind.spatial_dims == 2) {
    g.in_h = in_h;
    g.kernel_h = weight.size(-2);
    g.stride_h = stride;
    g.pad_h = padding;
  }
  g.validate(kind.op);
  return g;
}

Shape input_shape(const ConvKind& kind, const ConvGeometry& g) {
  if (kind.spatial_dims == 1) return {g.batch, g.in_channels, g.in_w};
  return {g.batch, g.in_channels, g.in_h, g.in_w};
}

Shape output_shape(const ConvKind& kind, const ConvGeometry& g) {
  if (kind.spatial_dims == 1) return {g.batch, g.out_channels, g.out_w()};
  return {g.batch, g.out_channels, g.out_h(), g.out_w()};
}

// Calls next(gradient buffer of inputs[index]), or next(nullptr) when that input needs none.
template <typename Next>
void with_grad(std::vector<Variable>& inputs, size_t index, Next next) {
  if (index < inputs.size() && inputs[index].requires_grad())
    detail::accumulate_grad(inputs[index], next);
  else
    next(nullptr);
}

Variable conv(const ConvKind& kind, const Variable& x, const Variable& weight, const Variable& bias,
              int stride, int padding, PaddingMode mode) {
  check_rank(kind, "input", kind.input_layout, x.defined() ? x.data() : Tensor());
  check_rank(kind, "weight", kind.weight_layout, weight.defined() ? weight.data() : Tensor());
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  if (ws[1] != xs[1])
    throw std::invalid_argument(std::string(kind.op) + ": weight has " + std::to_string(ws[1]) +
                                " input channels, input has " + std::to_string(xs[1]) + " (input " +
                                xs.str() + ", weight " + ws.str() + ")");
  if (bias.defined() && bias.shape() != Shape{ws[0]})
    throw std::invalid_argument(std::string(kind.op) + ": bias has shape " + bias.shape().str() +
                                ", expected [" + std::to_string(ws[0]) +
                                "] (one per output channel of weight " + ws.str() + ")");
  const ConvGeometry g = make_geometry(kind, xs[0], kind.spatial_dims == 2 ? xs[2] : 1, xs.size(-1),
                                       ws, stride, padding, mode);

  Tensor xc = x.data().contiguous();
  Tensor wc = weight.data().contiguous();
  Tensor bc = bias.defined() ? bias.data().contiguous() : Tensor();
  Tensor out = Tensor::empty(output_shape(kind, g));
  conv2d_forward(out.data(), xc.data(), wc.data(), bc.defined() ? bc.data() : nullptr, g);

  std::vector<Variable> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return Variable::make_result(
      std::move(out), std::move(inputs),
      [xc, wc, g](const Tensor& grad_output, std::vector<Variable>& in) {
        Tensor dout = grad_output.contiguous();
        with_grad(in, 0, [&](float* dinp) {
          with_grad(in, 1, [&](float* dweight) {
            with_grad(in, 2, [&](float* dbias) {
              conv2d_backward(dinp, dweight, dbias, dout.data(), xc.data(), wc.data(), g);
            });
          });
        });
      },
      kind.op);
}

// in_h is ignored (taken as 1) for conv1d.
Tensor conv_adjoint(const ConvKind& kind, const Tensor& y, const Tensor& weight, int64_t in_h,
                    int64_t in_w, int stride, int padding, PaddingMode mode) {
  check_rank(kind, "y", kind.output_layout, y);
  check_rank(kind, "weight", kind.weight_layout, weight);
  if (y.size(1) != weight.size(0))
    throw std::invalid_argument(std::string(kind.op) + ": y has " + std::to_string(y.size(1)) +
                                " channels, weight has " + std::to_string(weight.size(0)) +
                                " output channels (y " + y.shape().str() + ", weight " +
                                weight.shape().str() + ")");
  const ConvGeometry g =
      make_geometry(kind, y.size(0), in_h, in_w, weight.shape(), stride, padding, mode);
  const Shape expected = output_shape(kind, g);
  if (y.shape() != expected)
    throw std::invalid_argument(std::string(kind.op) + ": y has shape " + y.shape().str() +
                                ", but the conv of an input " + input_shape(kind, g).str() +
                                " gives " + expected.str() + " (" + g.str() + ")");
  Tensor yc = y.contiguous();
  Tensor wc = weight.contiguous();
  Tensor out = Tensor::zeros(input_shape(kind, g));
  conv2d_backward_data(out.data(), yc.data(), wc.data(), g);
  return out;
}

}  // namespace

Variable conv1d(const Variable& x, const Variable& weight, const Variable& bias, int stride,
                int padding, PaddingMode mode) {
  return conv(conv1d_kind("conv1d"), x, weight, bias, stride, padding, mode);
}

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, int stride,
                int padding, PaddingMode mode) {
  return conv(conv2d_kind("conv2d"), x, weight, bias, stride, padding, mode);
}

Tensor conv1d_adjoint(const Tensor& y, const Tensor& weight, int64_t input_length, int stride,
                      int padding, PaddingMode mode) {
  return conv_adjoint(conv1d_kind("conv1d_adjoint"), y, weight, 1, input_length, stride, padding,
                      mode);
}

Tensor conv2d_adjoint(const Tensor& y, const Tensor& weight, int64_t input_height,
                      int64_t input_width, int stride, int padding, PaddingMode mode) {
  return conv_adjoint(conv2d_kind("conv2d_adjoint"), y, weight, input_height, input_width, stride,
                      padding, mode);
}

}  // namespace dpm
