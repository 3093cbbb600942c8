#pragma once
// Operator norms of linear layers by power iteration on A^T A with persistent (warm) vectors
// (docs/protocol.md, Lipschitz facts). With v a unit vector and u = A v / ||A v||,
// sigma = u^T A v = ||A v|| is a lower estimate of ||A|| that rises to it as v converges to the top
// right singular vector; vectors kept between calls make a couple of iterations per call enough
// while weights drift slowly.
//
// A conv layer is measured as the linear map it is at the input size it sees (ConvMap: the
// forward kernel without bias, and its adjoint, the backward-data kernel), not through the
// reshaped kernel W_mat [Co, Ci*KH*KW], which only brackets it (reshaped_kernel_bounds).
#include <cstdint>

#include "autograd/kernels/conv.hpp"
#include "autograd/tensor.hpp"
#include "nn/conv.hpp"

namespace dpm::lipschitz {

// A linear map between two tensor shapes, given by its action and its adjoint on contiguous
// float buffers. Both overwrite their output.
class LinearMap {
 public:
  virtual ~LinearMap() = default;
  virtual Shape input_shape() const = 0;
  virtual Shape output_shape() const = 0;
  virtual void apply(const float* x, float* y) const = 0;    // y = A x
  virtual void adjoint(const float* y, float* x) const = 0;  // x = A^T y
};

// x [n] -> W x [m] for W [m, n] (row-major; a tensor of higher rank is read as [size(0), rest],
// so a conv kernel gives its reshaped matrix W_mat). Both products accumulate in double.
// Threads: none; these are matvecs of at most a few hundred thousand terms, run every k steps.
class DenseMap final : public LinearMap {
 public:
  explicit DenseMap(const Tensor& weight);
  Shape input_shape() const override { return {cols_}; }
  Shape output_shape() const override { return {rows_}; }
  void apply(const float* x, float* y) const override;
  void adjoint(const float* y, float* x) const override;

 private:
  Tensor weight_;  // contiguous
  int64_t rows_, cols_;
};

// The bias-free convolution of one sample at a fixed input size: [Ci, L] -> [Co, OL] for a
// weight [Co, Ci, K], [Ci, H, W] -> [Co, OH, OW] for [Co, Ci, KH, KW]. The geometry's batch
// must be 1. Threads: the conv kernels' (one sample: OpenBLAS threads the GEMM).
class ConvMap final : public LinearMap {
 public:
  ConvMap(const Tensor& weight, const ConvGeometry& geometry);
  Shape input_shape() const override;
  Shape output_shape() const override;
  void apply(const float* x, float* y) const override;
  void adjoint(const float* y, float* x) const override;

 private:
  Tensor weight_;  // contiguous
  ConvGeometry geometry_;
};

// The geometry of `conv` applied to one sample of input_shape ([B, Ci, L] or [B, Ci, H, W]; B is
// ignored). Throws std::invalid_argument when the shape does not fit the layer.
ConvGeometry conv_geometry(const nn::Conv& conv, const Shape& input_shape);

struct PowerIterationOptions {
  int steps = 2;  // updates of v per call (at least this many)
  // > 0: continue until the remaining relative error of sigma, extrapolated from its last two
  // changes (power iteration converges geometrically), is at most this. The last change alone
  // understates the error by 1 / (1 - rate) when the top singular values are close. Still a
  // heuristic: a conv's top singular values crowd together (on a large input they approach a
  // continuum), convergence then slows as it goes, and the extrapolation falls short; the test
  // suite checks 1e-3 against exact SVDs.
  double tolerance = 0;
  int max_steps = 1000;  // cap on the updates when tolerance > 0
};

struct PowerIterationResult {
  double sigma = 0;  // u^T A v for the returned u, v
  int steps = 0;     // updates of v made
  // Relative change of sigma over the last update, and the extrapolated relative distance still
  // to go: change * rate / (1 - rate), rate = the ratio of the last two changes. Infinite when
  // there are too few updates to tell, or the changes are not shrinking.
  double relative_change = 0;
  double remaining_error = 0;
  bool converged = false;  // tolerance > 0 and remaining_error <= tolerance
};

// The stopping rule of every power iteration here and of the Jacobian norms
// (diffusion/jacobian.hpp). The relative change of sigma over one update (0 when sigma is 0):
double relative_change(double previous_sigma, double sigma);
// The relative error of sigma still to go, extrapolated from its last two relative changes:
// change * rate / (1 - rate) with rate = change / previous_change; 0 when sigma did not move;
// infinite when previous_change is unknown (infinite) or the changes are not shrinking.
double extrapolated_error(double change, double previous_change);

// Advances the warm vectors v (the map's input shape) and u (its output shape) in place: each
// update is v <- A^T u / ||A^T u|| with u = A v / ||A v||, and the result is measured at the
// final v (so sigma, u and v are a consistent triple: d sigma / dA = u v^T at convergence).
// v must be nonzero; norms and inner products accumulate in double.
PowerIterationResult power_iterate(const LinearMap& map, Tensor& u, Tensor& v,
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
