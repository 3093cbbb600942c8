#pragma once
// Pseudoinverse-guided diffusion (PiGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023; docs/inverse.md,
// PiGDM) for a linear operator. From x_T = sqrt(abar_T) A^+ y + sqrt(1 - abar_T) z at the grid's
// top step, each grid step t -> s is the generalised DDIM step plus the guidance
//   weight * sqrt(abar_s) sqrt(abar_t) * J_x0hat(x_t)^T g,
//   x0_hat(x_t) = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t), where
//   noiseless: g = A^+ y - A^+ A x0_hat (the RED-Diff repository's baseline, algos/pgdm.py);
//   noisy:     g = A^T (r_t^2 A A^T + sigma_y^2 I)^-1 (y - A x0_hat), r_t^2 = 1 - abar_t (the
//              paper's form for unit-variance data; by the operator's SVD).
// The result is x_0 of the last step.
#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

enum class PigdmGuidance { noiseless, noisy };

struct PigdmSettings {
  StepGrid grid;  // 50 steps over 1..T
  PigdmGuidance guidance = PigdmGuidance::noiseless;
  double weight = 1.0;  // grad_term_weight of the authors' config
  double eta = 0.0;     // the authors' config; their scripts use 1.0 for noisy inpainting

  void validate(const char* caller) const;  // std::invalid_argument naming the field
};

// Throws std::invalid_argument when the operator has no SVD (noisy guidance) or when noisy
// guidance meets sigma_y = 0 at a step with r_t = 0.
Restored pigdm(const PigdmSettings& settings, MeasurementOperator& op, const Problem& problem,
               const Prior& prior, Rng& rng);

}  // namespace dpm::diffusion::inverse
