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
  // `values` as a batch of `rows` samples [rows, sample_shape...], the predictor's input shape.
  DoubleBatch batch(std::vector<double> values, int64_t rows) const;
};

// `count` independent standard normals drawn in order from rng (the solvers' noise).
std::vector<double> standard_normals(Rng& rng, int64_t count);

// Throws std::invalid_argument "<caller>: <field> must be <expected>, got <value>" unless ok: the
// settings checks of the solvers.
void require_setting(bool ok, const char* caller, const char* field, const char* expected,
                     double value);

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

// The timestep sub-sequence a solver runs on, built as the RED-Diff authors' code builds it
// (docs/inverse.md, Solvers): skip = (start_step - end_step) / num_steps (integer division) and the
// steps end_step + 1 + i skip for i = 0 .. num_steps - 1, in dpmlab's 1-based steps (the authors'
// 0-based step k is step k + 1 here). Each step t is paired with the grid step below it, s (0, the
// clean data with abar_0 = 1, below the lowest).
struct StepGrid {
  int64_t start_step = 0;  // 0: the schedule's T
  int64_t end_step = 0;    // the grid's lowest step is end_step + 1
  int64_t num_steps = 50;  // 0: every step, start_step - end_step of them

  // Ascending [num_steps]. Throws std::invalid_argument naming `caller` and the field when
  // end_step < 0, start_step > T, num_steps < 0 or num_steps > start_step - end_step.
  std::vector<int64_t> steps(const Schedule& schedule, const char* caller) const;
};

// One step of the grid from t down to s < t.
struct StepPair {
  int64_t t = 0, s = 0;
};
// The grid's pairs from the top step down: (t_K, t_{K-1}), ..., (t_1, 0).
std::vector<StepPair> descending_pairs(const std::vector<int64_t>& ascending_steps);

// The generalised DDIM step of the authors' code from t to s with x0_hat and eps predicted at t:
// x_s = sqrt(abar_s) x0_hat + c1 z + c2 eps, z ~ N(0, I), with
// c1 = eta sqrt((1 - abar_t / abar_s) (1 - abar_s) / (1 - abar_t)), c2 = sqrt(1 - abar_s - c1^2).
// eta = 0 is DDIM, eta = 1 the ancestral step with variance beta~ (for s = t - 1).
struct DdimCoefficients {
  double sqrt_abar_s = 1.0, c1 = 0.0, c2 = 0.0;
};
DdimCoefficients ddim_coefficients(const Schedule& schedule, StepPair step, double eta);

struct Restored {
  DoubleBatch x_hat;            // [B, sample_shape...]
  int64_t evaluations = 0;      // batched predictor evaluations (NFE)
  int64_t backward_passes = 0;  // batched J_eps^T products (each one backward pass)
};

}  // namespace dpm::diffusion::inverse
