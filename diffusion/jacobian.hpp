#pragma once
// Jacobian norms of the maps a DPM denoiser is made of, measured per sample (docs/protocol.md,
// Lipschitz facts): the noise predictor eps(., t), the reverse mean
// mu(., t) = (x - beta_t / sqrt(1 - abar_t) eps(x, t)) / sqrt(alpha_t) and chains of them (the
// mean-forwarding denoiser), for a trained network or the exact oracle eps*.
//
// Each sample i has its own map, linearised at its own point x_i; a BatchJacobian gives the
// products J v and J^T u for all samples at once (row-major [B, n] doubles), so a batch of
// samples costs batched network passes. The largest singular value ||J(x_i)|| is found by power
// iteration on J^T J (Krylov-accelerated, jacobian_norms): sigma = ||J v|| at a unit v is a
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

#include "autograd/variable.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

// B maps R^n -> R^n, each linearised at its sample's point. Vectors are row-major [B, n].
class BatchJacobian {
 public:
  virtual ~BatchJacobian() = default;
  virtual int64_t batch() const = 0;
  virtual int64_t dim() const = 0;
  virtual std::vector<double> jvp(const std::vector<double>& v) = 0;  // J v
  virtual std::vector<double> vjp(const std::vector<double>& u) = 0;  // J^T u

 protected:
  // Throws std::invalid_argument naming `caller` unless v holds batch() * dim() values.
  void check_vector(const std::vector<double>& v, const char* caller) const;
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
  std::vector<double> jvp(const std::vector<double>& v) override;

 protected:
  int64_t t_;
  DoubleBatch x_;

 private:
  NoisePredictor& predictor_;
};

// J^T u through the network's tape: one forward with a graph at x (eval mode, parameters frozen
// so no weight gradients are computed), then one backward per product. keep_graph holds the
// graph between products (repeated J^T u at one point cost one backward each); without it the
// graph is rebuilt per product, so a long chain of steps holds one graph at a time.
class NetworkEpsJacobian final : public EpsJacobian {
 public:
  NetworkEpsJacobian(NetworkPredictor& network, int64_t t, DoubleBatch x, bool keep_graph = true);
  std::vector<double> vjp(const std::vector<double>& u) override;

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
  std::vector<double> vjp(const std::vector<double>& u) override;

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
  std::vector<double> jvp(const std::vector<double>& v) override;
  std::vector<double> vjp(const std::vector<double>& u) override;

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
  std::vector<double> jvp(const std::vector<double>& v) override;
  std::vector<double> vjp(const std::vector<double>& u) override;

 private:
  std::vector<std::shared_ptr<BatchJacobian>> steps_;
  double scale_;
};

struct JacobianNormSettings {
  // Per sample and map: done once the relative error of sigma, extrapolated from its last two
  // changes (as nn/lipschitz's power_iterate does), is at most this. Sigma is still updated
  // afterwards (the subspace keeps growing while other samples or maps converge).
  double tolerance = 1e-3;
  int min_iterations = 3;
  int max_iterations = 30;
  uint64_t seed = 0;  // of the initial directions
};

struct JacobianNorms {
  // Per sample: max ||M v|| over unit v in the subspace explored, a lower estimate of
  // ||M(x_i)|| (M the measured map).
  std::vector<double> sigma;
  std::vector<double>
      remaining_error;  // extrapolated relative error (at convergence; infinite: unknown)
  std::vector<char> converged;
  std::vector<double> direction;  // [B, n]: the unit v attaining sigma, per sample
  int iterations = 0;             // J v products made

  double max() const;
  double mean() const;
  int64_t converged_count() const;
};

// One of the maps measured together from one Jacobian J: identity I + jacobian J.
struct AffineCombination {
  double identity = 0.0;
  double jacobian = 1.0;
};

// The largest singular value of every map M = a I + b J (per sample) by power iteration on
// M^T M, accelerated by Rayleigh-Ritz over the subspace its iterates span (Golub-Kahan-Lanczos
// with full reorthogonalisation): the subspace V (orthonormal per sample) grows by one direction
// per iteration, M^T u with u the current top left Ritz vector of one of the maps (in turn among
// those not yet converged), and sigma = sigma_max(M V) = max ||M v|| over unit v in span V. It is
// the power iteration's Krylov space, so sigma is never below the plain power iterate's value and
// converges much faster when the top singular values crowd together; and since every map of the
// form a I + b J has M V = a V + b J V, one J v per iteration serves all of them (eps and mu
// share one subspace). Runs until every sample and map has converged or max_iterations J v
// products were made; one J^T u per further iteration.
std::vector<JacobianNorms> jacobian_norms(BatchJacobian& jacobian,
                                          const std::vector<AffineCombination>& maps,
                                          const JacobianNormSettings& settings);
// The single map J.
JacobianNorms jacobian_norm(BatchJacobian& jacobian, const JacobianNormSettings& settings);

// With J v only: v <- J v / ||J v|| from a random unit v, `iterations` products; sigma_i is the
// largest ||J v|| met. Each is a lower bound on ||J(x_i)|| (v is a unit vector); the iterates
// approach the spectral radius, which can fall short of the norm for a non-normal J. For maps
// whose J^T u is too costly (the whole denoiser). converged stays 0, remaining_error infinite.
JacobianNorms forward_iteration(BatchJacobian& jacobian, int iterations, uint64_t seed);

}  // namespace dpm::diffusion
