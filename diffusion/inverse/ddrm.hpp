#pragma once
// Denoising diffusion restoration models (DDRM; Kawar, Elad, Ermon, Song, NeurIPS 2022;
// docs/inverse.md, DDRM) for an operator with an SVD A = U diag(s) V^T. In the spectral
// coordinates of x_t / sqrt(abar_t) (noise level sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)), each
// grid step t -> s treats every coordinate i by how its measurement ybar_i = (U^T y)_i / s_i
// compares with the noise level sigma_s:
//   null space (s_i = 0): x0_hat_i + sqrt(1 - eta^2) sigma_s eps_i + eta sigma_s z;
//   s_i sigma_s < sigma_y: x0_hat_i + sqrt(1 - eta^2) sigma_s ((U^T y)_i - s_i x0_hat_i) / sigma_y
//                          + eta sigma_s z;
//   s_i sigma_s > sigma_y: eta_b ybar_i + (1 - eta_b) x0_hat_i
//                          + sqrt(sigma_s^2 - eta_b^2 sigma_y^2 / s_i^2) z;
// (x0_hat and eps in spectral coordinates) and x_s = sqrt(abar_s) V (that vector). The start at the
// top step T' is x_T' = sqrt(abar_T') V x with x_i = ybar_i + sqrt(sigma_T'^2 - sigma_y^2 / s_i^2)
// z where s_i sigma_T' > sigma_y and sigma_T' z elsewhere. The result is x_0 of the last step. The
// comparisons are strict, as in the authors' code: a coordinate with s_i sigma_s = sigma_y takes
// the null-space formula, and so does every coordinate at the last step (s = 0, sigma_s = 0) when
// sigma_y = 0, which then yields x0_hat. A singular value 0 among the first k = min(m, n) takes the
// s_i sigma_s < sigma_y branch when sigma_y > 0, with ((U^T y)_i - s_i x0_hat_i) = (U^T y)_i, as
// the authors' code computes it.
//
// sigma_y is problem.sigma_y as given (the authors' code doubles its configured sigma_y, a noise
// level of images in [0, 1], for its images in [-1, 1]).
//
// Noise: the start draws z [B, n] and every step one z [B, n] (row-major, used by coordinate i of
// row b whichever branch it takes; the authors' code draws three tensors and uses one entry of
// them per coordinate, the same distribution). The start scales by the exact sqrt(abar_T'); the
// authors' code divides by sigma_T' = sqrt(1 - abar_T') / sqrt(abar_T') instead, which is
// sqrt(abar_T') / sqrt(1 - abar_T'), the same to first order when abar_T' << 1.
#include "diffusion/inverse/solver.hpp"

namespace dpm::diffusion::inverse {

struct DdrmSettings {
  StepGrid grid{0, 0, 20};  // the DDRM paper's 20 steps
  double eta = 0.85;        // the DDRM paper's defaults (and the RED-Diff repository's config)
  double eta_b = 1.0;

  void validate(const char* caller) const;  // std::invalid_argument naming the field
};

// Throws std::invalid_argument when the operator has no SVD.
Restored ddrm(const DdrmSettings& settings, MeasurementOperator& op, const Problem& problem,
              const Prior& prior, Rng& rng);

}  // namespace dpm::diffusion::inverse
