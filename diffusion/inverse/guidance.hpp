#pragma once
// What the guided DDIM solvers (DPS, dps.hpp; PiGDM, pigdm.hpp) share: Tweedie's x0_hat at x_t
// with products of its transposed Jacobian, the start x_T from A^+ y, and the loop of generalised
// DDIM steps each solver adds its guidance term to.
//
// Noise draw order (one standard normal per element, row-major [B, n], from the solver's Rng):
// first the start's z, then, from the top grid step down, one z per step with c1 > 0. A step with
// c1 = 0 (eta = 0, or the last step, to s = 0) draws nothing, as run_reverse's DDIM, so a solver
// whose guidance is zero repeats run_reverse's path from the same x_T on the full grid.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

// x0_hat(x_t) = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t) at a batch [B, n], and
// J_x0hat^T u = (u - sqrt(1 - abar_t) J_eps^T u) / sqrt(abar_t). Construction costs one predictor
// evaluation (for a network, the forward whose graph the first product reuses); each product one
// backward pass.
class DenoisedPoint {
 public:
  // Throws std::invalid_argument naming `caller` when the prior has no eps_jacobian.
  DenoisedPoint(const Prior& prior, int64_t t, const DoubleBatch& x_t, const char* caller);

  const std::vector<double>& eps() const { return eps_; }
  const std::vector<double>& x0_hat() const { return x0_hat_; }
  std::vector<double> x0_hat_adjoint(const std::vector<double>& u);  // [B, n] -> [B, n]
  int64_t backward_passes() const { return backward_passes_; }

 private:
  double abar_t_;
  std::shared_ptr<EpsJacobian> eps_jacobian_;
  std::vector<double> eps_, x0_hat_;
  int64_t backward_passes_ = 0;
};

// y - A x0_hat, [B, m] for x0_hat [B, n] with the operator's batch B.
std::vector<double> measurement_residual(MeasurementOperator& op, const std::vector<double>& y,
                                         const std::vector<double>& x0_hat);

// Checks of a single-step entry point (measurement_gradient, pigdm_guidance): the problem, t in
// 1..T and x_t of y's B rows of the operator's input size. Returns B; std::invalid_argument
// naming `caller` and the field otherwise.
int64_t validate_point(MeasurementOperator& op, const Problem& problem, const Prior& prior,
                       int64_t t, const DoubleBatch& x_t, bool require_positive_sigma,
                       const char* caller);

// x_T = sqrt(abar_T) A^+ y + sqrt(1 - abar_T) z at step top_step, [B, sample_shape...] with the
// operator's batch set to B.
DoubleBatch guided_start(MeasurementOperator& op, const Problem& problem, const Schedule& schedule,
                         int64_t top_step, Rng& rng);

// The term a solver adds to the DDIM step's x_s [B, n] at grid step `step`, from x0_hat and eps at
// x_t (taking J_x0hat^T products of `point` as it needs). The operator's batch is B.
using Guidance = std::function<std::vector<double>(StepPair step, DenoisedPoint& point)>;

struct GuidedDdim {
  StepGrid grid;
  double eta = 0.0;
  bool require_positive_sigma = false;
  const char* caller = "";  // names the solver in errors
};

// Validates the problem and the grid, then runs from guided_start at the grid's top step down to
// x_0: per pair (t, s), x_s = sqrt(abar_s) x0_hat + c2 eps + c1 z + guidance(step, point). One
// evaluation per step; the backward passes are those the guidance takes.
Restored run_guided_ddim(const GuidedDdim& run, MeasurementOperator& op, const Problem& problem,
                         const Prior& prior, Rng& rng, const Guidance& guidance);

// Settings checks shared by the solvers' validate: std::invalid_argument "caller: field ...".
void require_eta_in_unit_interval(double eta, const char* caller);
void require_finite_non_negative(double value, const char* field, const char* caller);

}  // namespace dpm::diffusion::inverse
