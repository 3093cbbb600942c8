#pragma once
// The measured Jacobian norms of a network's eps(., t) and mu(., t) at points of step t, shared by
// the Lipschitz audit (experiments/lipschitz_audit.hpp) and the Jacobian tracker that follows them
// while the network trains (trainers/jacobian_tracker.hpp), so that both measure the same thing
// the same way.
//
// Points: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the noise drawn element by element in
// row order, so the first k rows of a draw do not depend on how many rows are drawn.
// Norms: both maps in one Krylov subspace (nn/lipschitz/singular_values.hpp), one J v (central
// difference) and one J^T u (backward) per iteration; mu = (I - beta_t / sqrt(1 - abar_t) J_eps) /
// sqrt(alpha_t). Every value is a lower estimate of the map's norm at its point that rises to it.
#include <cstdint>
#include <vector>

#include "autograd/rng.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/lipschitz/singular_values.hpp"

namespace dpm::diffusion {

// x_t for the rows of x0 (row-major doubles), the noise from `noise`.
std::vector<double> noisy_points(const Schedule& schedule, int64_t t, const std::vector<double>& x0,
                                 Rng& noise);

struct StepJacobianNorms {
  lipschitz::TopSingularValues eps, mean;  // per point; mean.direction is a warm start
};

// ||J_eps(x_i)|| and ||J_mu(x_i)|| of the network at the points [B, ...]. `start` [B, n], when
// given, is the first direction of each row (e.g. the previous measurement's mean.direction).
StepJacobianNorms measure_step_norms(NetworkPredictor& network, int64_t t,
                                     const DoubleBatch& points,
                                     const lipschitz::KrylovSettings& settings,
                                     const std::vector<double>& start = {});

}  // namespace dpm::diffusion
