#pragma once
// Jacobian norms of the maps a DPM denoiser is made of, measured per sample (docs/protocol.md,
// Lipschitz facts): the noise predictor eps(., t), the reverse mean
// mu(., t) = (x - beta_t / sqrt(1 - abar_t) eps(x, t)) / sqrt(alpha_t) and chains of them (the
// mean-forwarding denoiser), for a trained network or the exact oracle eps*.
//
// Each sample i has its own map, linearised at its own point x_i; a BatchJacobian gives the
// products J v and J^T u for all samples at once (row-major [B, n] doubles), so a batch of
// samples costs batched network passes. A BatchJacobian is a dpm::LinearOperator, so the largest
// singular value ||J(x_i)|| is found by the shared solver (nn/lipschitz/singular_values.hpp:
// top_singular_values, or forward_iteration with J v only): sigma = ||J v|| at a unit v is a
// lower estimate that rises to ||J(x_i)||, so a measured value is an empirical LOWER bound on the
// Lipschitz constant of the map (up to the finite-difference error below).
//
// Products of a noise predictor's Jacobian:
//   J v   by a central difference of the predictor along v: (eps(x + h v) - eps(x - h v)) / 2h,
//         both sides in one batched call, the difference taken in double. h is relative to the
//         point: h_i = kFiniteDifferenceStep * max(||x_i||, 1) along the unit direction
//         v_i / ||v_i|| (the result is scaled back by ||v_i||). For a float32 network the
//         rounding of x + h v and of the outputs costs ~eps_f32 max(||x||, 1) / h ~ 1e-4
//         relative; the truncation error is O(h^2), below that at this h for smooth maps.
//   J^T u by one backward pass through the network's tape (NetworkEpsJacobian), or for eps*
//         exactly: J_eps* = -sqrt(1 - abar_t) Hess log p_t is symmetric (OracleEpsJacobian).
#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/linear_operator.hpp"
#include "autograd/variable.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

// B maps R^n -> R^n, each linearised at its sample's point. Vectors are row-major [B, n];
// apply is J v, adjoint J^T u.
class BatchJacobian : public LinearOperator {
 public:
  int64_t batch() const override = 0;
  virtual int64_t dim() const = 0;
  int64_t input_dim() const final { return dim(); }
  int64_t output_dim() const final { return dim(); }
};

// The central difference step relative to max(||x_i||, 1) (see the file comment).
inline constexpr double kFiniteDifferenceStep = 1e-3;

// The Jacobian of a noise predictor eps(., t) at the points x [B, ...]. J v by central
// differences through predict_eps (one batched call of 2B samples per product); J^T u by the
// subclass.
class EpsJacobian : public BatchJacobian {
 public:
  EpsJacobian(NoisePredictor& predictor, int64_t t, DoubleBatch x);
  int64_t batch() const override { return x_.batch(); }
  int64_t dim() const override { return x_.row_size(); }
  std::vector<double> apply(const std::vector<double>& v) override;
  // eps(x, t) at the points, one evaluation (a network's is the forward of the graph its next
  // J^T u reuses, so that eps and one J^T u together cost one forward and one backward).
  virtual DoubleBatch eps();

 protected:
  int64_t t_;
  DoubleBatch x_;

 private:
  NoisePredictor& predictor_;
};

// J^T u through the network's tape: one forward with a graph at x (eval mode, parameters frozen
// so no weight gradients are computed; one evaluation of the predictor), then one backward per
// product. keep_graph holds the graph between products (repeated J^T u at one point cost one
// backward each); without it the graph is rebuilt per product, so a long chain of steps holds one
// graph at a time.
class NetworkEpsJacobian final : public EpsJacobian {
 public:
  NetworkEpsJacobian(NetworkPredictor& network, int64_t t, DoubleBatch x, bool keep_graph = true);
  std::vector<double> adjoint(const std::vector<double>& u) override;
  DoubleBatch eps() override;  // builds the graph unless it is held

 private:
  void build_graph();

  NetworkPredictor& network_;
  bool keep_graph_;
  Variable input_, eps_;  // the graph at x (undefined when not held)
};

// J^T u = J u = -sqrt(1 - abar_t) Hess log p_t(x) u, exact (the Hessians are formed on first use).
class OracleEpsJacobian final : public EpsJacobian {
 public:
  OracleEpsJacobian(GmmOracle& oracle, int64_t t, DoubleBatch x);
  std::vector<double> adjoint(const std::vector<double>& u) override;

 private:
  GmmOracle& oracle_;
  std::vector<double> hessians_;  // [B, n, n], empty until needed
};

// a I + b J for an inner Jacobian J.
class AffineJacobian final : public BatchJacobian {
 public:
  AffineJacobian(std::shared_ptr<BatchJacobian> inner, double identity_coefficient,
                 double jacobian_coefficient);
  int64_t batch() const override { return inner_->batch(); }
  int64_t dim() const override { return inner_->dim(); }
  std::vector<double> apply(const std::vector<double>& v) override;
  std::vector<double> adjoint(const std::vector<double>& u) override;

 private:
  std::vector<double> combine(const std::vector<double>& v, std::vector<double> jv) const;

  std::shared_ptr<BatchJacobian> inner_;
  double a_, b_;
};

// The Jacobian of mu(., t) from that of eps(., t): (I - beta_t / sqrt(1 - abar_t) J_eps) /
// sqrt(alpha_t). With eps* it is the stepwise CME's J_t = (I + beta_t Hess log p_t) /
// sqrt(alpha_t).
std::shared_ptr<BatchJacobian> mean_jacobian(std::shared_ptr<BatchJacobian> eps_jacobian,
                                             const Schedule& schedule, int64_t t);

// scale * J_k ... J_2 J_1: steps[0] = J_1 is applied first (for the denoiser: the step at the
// start step, linearised at the start state). J^T u runs the steps in reverse.
class ChainJacobian final : public BatchJacobian {
 public:
  ChainJacobian(std::vector<std::shared_ptr<BatchJacobian>> steps, double scale);
  int64_t batch() const override { return steps_.front()->batch(); }
  int64_t dim() const override { return steps_.front()->dim(); }
  std::vector<double> apply(const std::vector<double>& v) override;
  std::vector<double> adjoint(const std::vector<double>& u) override;

 private:
  std::vector<std::shared_ptr<BatchJacobian>> steps_;
  double scale_;
};

}  // namespace dpm::diffusion
