#pragma once
// Operator norms of linear layers (docs/protocol.md, Lipschitz facts): the layer as a
// dpm::LinearOperator on one sample, measured by the shared solver (singular_values.hpp) from
// persistent (warm) vectors: sigma = ||A v|| at a unit v is a lower estimate of ||A|| that rises
// to it as v converges to the top right singular vector; vectors kept between calls make a couple
// of iterations per call enough while weights drift slowly.
//
// A conv layer is measured as the linear map it is at the input size it sees (ConvMap: the
// forward kernel without bias, and its adjoint, the backward-data kernel), not through the
// reshaped kernel W_mat [Co, Ci*KH*KW], which only brackets it (reshaped_kernel_bounds).
#include <cstdint>
#include <vector>

#include "autograd/kernels/conv.hpp"
#include "autograd/linear_operator.hpp"
#include "autograd/tensor.hpp"
#include "nn/conv.hpp"

namespace dpm::lipschitz {

// A layer's linear map on one sample, between two tensor shapes (input_dim and output_dim are
// their sizes). apply and adjoint take and return doubles; the layers compute in float32.
class LayerOperator : public LinearOperator {
 public:
  virtual Shape input_shape() const = 0;
  virtual Shape output_shape() const = 0;
  int64_t input_dim() const final { return input_shape().numel(); }
  int64_t output_dim() const final { return output_shape().numel(); }
};

// x [n] -> W x [m] for W [m, n] (row-major; a tensor of higher rank is read as [size(0), rest],
// so a conv kernel gives its reshaped matrix W_mat). Both products accumulate in double.
// Threads: none; these are matvecs of at most a few hundred thousand terms, run every k steps.
class DenseMap final : public LayerOperator {
 public:
  explicit DenseMap(const Tensor& weight);
  Shape input_shape() const override { return {cols_}; }
  Shape output_shape() const override { return {rows_}; }
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;

 private:
  Tensor weight_;  // contiguous
  int64_t rows_, cols_;
};

// The bias-free convolution of one sample at a fixed input size: [Ci, L] -> [Co, OL] for a
// weight [Co, Ci, K], [Ci, H, W] -> [Co, OH, OW] for [Co, Ci, KH, KW]. The geometry's batch
// must be 1. The vectors are rounded to float32 for the kernels. Threads: the conv kernels'
// (one sample: OpenBLAS threads the GEMM).
class ConvMap final : public LayerOperator {
 public:
  ConvMap(const Tensor& weight, const ConvGeometry& geometry);
  Shape input_shape() const override;
  Shape output_shape() const override;
  std::vector<double> apply(const std::vector<double>& x) override;
  std::vector<double> adjoint(const std::vector<double>& y) override;

 private:
  Tensor weight_;  // contiguous
  ConvGeometry geometry_;
};

// The geometry of `conv` applied to one sample of input_shape ([B, Ci, L] or [B, Ci, H, W]; B is
// ignored). Throws std::invalid_argument when the shape does not fit the layer.
ConvGeometry conv_geometry(const nn::Conv& conv, const Shape& input_shape);

struct PowerIterationOptions {
  int steps = 2;  // updates of v per call (at least this many): steps + 1 products A v
  // > 0: continue until the remaining relative error of sigma, extrapolated from its last two
  // changes (extrapolated_error), is at most this and sigma stays there for three iterations
  // (KrylovSettings::confirmations). Still a heuristic: a conv's top singular
  // values crowd together (on a large input they approach a continuum); the test suite checks
  // 1e-3 against exact SVDs.
  double tolerance = 0;
  int max_steps = 1000;  // cap on the updates when tolerance > 0
};

struct PowerIterationResult {
  double sigma = 0;  // u^T A v for the returned u, v
  int steps = 0;     // updates of v made
  // The extrapolated relative distance of sigma still to go (extrapolated_error); infinite when
  // there are too few updates to tell, or the changes are not shrinking.
  double remaining_error = 0;
  bool converged = false;  // by the solver's rule (KrylovSettings), or the subspace spans R^n
};

// Advances the warm vectors v (the map's input shape) and u (its output shape) in place by the
// shared solver (top_singular_value), started at v: each update adds A^T u to the subspace, u the
// current top left Ritz vector. sigma, u and v are a consistent triple: u = A v / sigma, so
// d sigma / dA = u v^T at convergence. v must be nonzero and finite.
PowerIterationResult power_iterate(LayerOperator& map, Tensor& u, Tensor& v,
                                   const PowerIterationOptions& options);

// The reshaped-kernel proxy sigma(W_mat) brackets the operator norm ||T|| of a conv. T factors
// as W_mat o im2col, and im2col^T im2col is diagonal, holding how many patch entries read each
// input element (its multiplicity), so
//   ||T|| <= sqrt(max multiplicity) sigma(W_mat), and
//   sigma(W_mat) <= ||T|| whenever some patch lies wholly inside the input (place the top right
//   singular vector of W_mat there: that output alone has norm sigma(W_mat)).
// Zero padding: the multiplicity is at most ceil(KH/SH) ceil(KW/SW), so KH KW at stride 1, the
// documented sigma(W_mat) <= ||T|| <= sqrt(KH KW) sigma(W_mat). Replicate padding also reads an
// edge element in place of the pad it replaces: (p + 1)(p + 2) / 2 times per side at stride 1
// with pad p. For K = 3, p = 1 that is 3 = K and the sqrt(KH KW) bound still holds; for K = 5,
// p = 2 it is 6 > 5 and ||T|| does exceed sqrt(KH KW) sigma(W_mat) (tests/test_spectral.cpp).
struct ReshapedKernelBounds {
  bool lower_holds = false;  // some patch lies wholly inside the input
  double upper_factor = 0;   // sqrt(max multiplicity)
};
ReshapedKernelBounds reshaped_kernel_bounds(const ConvGeometry& geometry);

}  // namespace dpm::lipschitz
