#pragma once
// What the inverse-problem solvers share (docs/inverse.md, Solvers): the problem y = A x0 +
// sigma_y n for a batch, the DM prior a solver draws on (any NoisePredictor: a trained network or
// the exact eps* of a GMM, with the transposed Jacobian of eps for the solvers that backpropagate
// through it) and what a solver returns. Each solver (red_diff.hpp, dps.hpp, pigdm.hpp,
// ddrm.hpp) is one function solve(settings, op, problem, prior, rng) -> Restored.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/shape.hpp"
#include "diffusion/double_batch.hpp"
#include "diffusion/inverse/measurement_operator.hpp"
#include "diffusion/jacobian.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion::inverse {

// B measurements through one operator: y [B, m] row-major, each x0 of shape sample_shape (the
// predictor's per-sample input, e.g. [N] or [C, H, W]; its numel is the operator's input size).
struct Problem {
  std::vector<double> y;
  double sigma_y = 0.0;
  Shape sample_shape;

  // Returns B. Throws std::invalid_argument naming `caller` and the field: sample_shape empty or
  // not of the operator's input size, y not whole rows of the operator's output size, sigma_y
  // negative or not finite, or (require_positive_sigma) not positive.
  int64_t validate(const MeasurementOperator& op, const char* caller,
                   bool require_positive_sigma) const;
};

// The DM prior: eps(x_t, t) on the schedule it was trained for, and J_eps(x)^T u at step t for
// the solvers that need it (eps_jacobian is empty for a predictor without one; the solvers that
// need it throw then).
struct Prior {
  NoisePredictor& predictor;
  const Schedule& schedule;
  std::function<std::shared_ptr<EpsJacobian>(int64_t t, const DoubleBatch& x)> eps_jacobian;
};
Prior network_prior(NetworkPredictor& network);  // J^T u through the network's tape
Prior oracle_prior(GmmOracle& oracle);           // J^T u exact, by Hess log p_t

struct Restored {
  DoubleBatch x_hat;            // [B, sample_shape...]
  int64_t evaluations = 0;      // batched predictor evaluations (NFE)
  int64_t backward_passes = 0;  // batched J_eps^T products (each one backward pass)
};

}  // namespace dpm::diffusion::inverse
