#pragma once
// Pseudoinverse-guided diffusion (PiGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023; docs/inverse.md,
// PiGDM) for a linear operator. From x_T = sqrt(abar_T) A^+ y + sqrt(1 - abar_T) z at the grid's
// top step, each grid step t -> s is the generalised DDIM step plus the guidance
//   weight * sqrt(abar_s) sqrt(abar_t) * J_x0hat(x_t)^T g,
//   x0_hat(x_t) = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t), where
//   noiseless: g = A^+ y - A^+ A x0_hat (the RED-Diff repository's baseline, algos/pgdm.py);
//   noisy:     g = r_t^2 A^T (r_t^2 A A^T + sigma_y^2 I)^-1 (y - A x0_hat), r_t^2 = 1 - abar_t
//              (the paper's form for unit-variance data, by the operator's SVD, needs
//              sigma_y > 0), times r_t^2 so that it tends to the noiseless g as sigma_y -> 0:
//              the paper's noiseless form carries 1 / r_t^2, which the repository's coefficient
//              replaces, so the noisy form takes the same coefficient only without it.
// g is held fixed (stop-gradient) in the product: the guidance is grad_{x_t} <sg(g), x0_hat(x_t)>.
// Each step costs one evaluation and one backward pass; the noise is drawn as guidance.hpp says.
// The result is x_0 of the last step. Unlike the authors' code for their 'in2' inpainting, x0_hat
// is not overwritten by y on the observed entries.
#include <vector>

#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

enum class PigdmGuidance { noiseless, noisy };

struct PigdmSettings {
  StepGrid grid{0, 0, 50};  // 50 steps over 1..T
  PigdmGuidance guidance = PigdmGuidance::noiseless;
  double weight = 1.0;  // grad_term_weight of the authors' config
  double eta = 0.0;     // the authors' config; their scripts use 1.0 for noisy inpainting

  void validate(const char* caller) const;  // std::invalid_argument naming the field
};

// Throws std::invalid_argument for noisy guidance when the operator has no SVD or sigma_y is not
// positive.
Restored pigdm(const PigdmSettings& settings, MeasurementOperator& op, const Problem& problem,
               const Prior& prior, Rng& rng);

// The guidance at x_t [B, n] at step t, without the step's coefficient: g and
// J_x0hat(x_t)^T g for every row, with x0_hat; one predictor evaluation and one J_eps^T product.
// Public so that the guidance can be checked against closed forms and finite differences.
struct PigdmGuidanceTerm {
  std::vector<double> g;         // [B, n]
  std::vector<double> gradient;  // [B, n]: J_x0hat^T g
  std::vector<double> x0_hat;    // [B, n]
};
PigdmGuidanceTerm pigdm_guidance(PigdmGuidance kind, MeasurementOperator& op,
                                 const Problem& problem, const Prior& prior, int64_t t,
                                 const DoubleBatch& x_t);

}  // namespace dpm::diffusion::inverse
