#pragma once
// The flags of the inverse-problem solvers' settings (experiments/inverse_solvers.hpp), declared
// once for every command whose plan derives from InverseSolverPlan.
#include "apps/flag_table.hpp"
#include "experiments/inverse_solvers.hpp"

namespace dpm::cli {

template <typename Plan>
void add_solver_flags(FlagTable<Plan>& flags) {
  using S = experiments::InverseSolverPlan;
  flags.add("--solvers", &S::solvers, "a list of red-diff, dps, pigdm, ddrm");
  flags.add("--red-diff-steps", &S::red_diff_steps, "RED-Diff: grid steps (Adam steps)");
  flags.add("--red-diff-lr", &S::red_diff_lr, "RED-Diff: Adam's learning rate");
  flags.add("--red-diff-lambda", &S::red_diff_lambda, "RED-Diff: the regulariser's lambda");
  flags.add("--red-diff-weighting", &S::red_diff_weighting,
            "RED-Diff: lambda_t's weighting of 1/sqrt(SNR_t)");
  flags.add("--red-diff-data-term", &S::red_diff_data_term,
            "RED-Diff: authors_mean (the authors' code) or likelihood (1 / (2 sigma_y^2))");
  flags.add("--red-diff-start", &S::red_diff_start,
            "RED-Diff: mu starts at pinv (A^+ y, the authors' code) or adjoint (A^T y)");
  flags.add("--dps-steps", &S::dps_steps, "DPS: grid steps (0: every step)");
  flags.add("--dps-zeta", &S::dps_zeta, "DPS: the step size zeta'");
  flags.add("--dps-eta", &S::dps_eta, "DPS: DDIM eta (1: ancestral)");
  flags.add("--pigdm-steps", &S::pigdm_steps, "PiGDM: grid steps");
  flags.add("--pigdm-eta", &S::pigdm_eta, "PiGDM: DDIM eta");
  flags.add("--pigdm-weight", &S::pigdm_weight, "PiGDM: the guidance weight");
  flags.add("--pigdm-guidance", &S::pigdm_guidance,
            "PiGDM: noiseless (A^+ guidance, the authors' baseline) or noisy (sigma_y-aware)");
  flags.add("--ddrm-steps", &S::ddrm_steps, "DDRM: grid steps");
  flags.add("--ddrm-eta", &S::ddrm_eta, "DDRM: eta");
  flags.add("--ddrm-eta-b", &S::ddrm_eta_b, "DDRM: eta_b");
}

}  // namespace dpm::cli
