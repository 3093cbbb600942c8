#pragma once
// The inverse-problem solvers as the experiments name and configure them (docs/inverse.md):
// which solvers run and each one's settings, as plan fields. Both inverse-problem experiments
// (inverse_bench.hpp on GMM priors, image_restore.hpp on images) derive their plan from
// InverseSolverPlan, so a solver setting is one field, one JSON name and one flag for both.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/rng.hpp"
#include "diffusion/inverse/pigdm.hpp"
#include "diffusion/inverse/red_diff.hpp"
#include "diffusion/inverse/solver.hpp"
#include "distributed/shared_items.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

enum class InverseSolver { red_diff, dps, pigdm, ddrm };

}  // namespace dpm::experiments

template <>
struct dpm::experiments::Choices<dpm::experiments::InverseSolver> {
  static constexpr std::array<std::pair<InverseSolver, const char*>, 4> values{
      {{InverseSolver::red_diff, "red-diff"},
       {InverseSolver::dps, "dps"},
       {InverseSolver::pigdm, "pigdm"},
       {InverseSolver::ddrm, "ddrm"}}};
};

template <>
struct dpm::experiments::Choices<dpm::diffusion::inverse::RedDiffWeighting> {
  using W = dpm::diffusion::inverse::RedDiffWeighting;
  static constexpr std::array<std::pair<W, const char*>, 6> values{
      {{W::linear, "linear"},
       {W::sqrt, "sqrt"},
       {W::square, "square"},
       {W::log, "log"},
       {W::trunc_linear, "trunc_linear"},
       {W::constant, "const"}}};
};

template <>
struct dpm::experiments::Choices<dpm::diffusion::inverse::StepOrder> {
  using O = dpm::diffusion::inverse::StepOrder;
  static constexpr std::array<std::pair<O, const char*>, 3> values{
      {{O::descending, "descending"}, {O::ascending, "ascending"}, {O::random, "random"}}};
};

template <>
struct dpm::experiments::Choices<dpm::diffusion::inverse::RedDiffDataTerm> {
  using D = dpm::diffusion::inverse::RedDiffDataTerm;
  static constexpr std::array<std::pair<D, const char*>, 2> values{
      {{D::authors_mean, "authors_mean"}, {D::likelihood, "likelihood"}}};
};

template <>
struct dpm::experiments::Choices<dpm::diffusion::inverse::RedDiffStart> {
  using S = dpm::diffusion::inverse::RedDiffStart;
  static constexpr std::array<std::pair<S, const char*>, 2> values{
      {{S::pseudo_inverse, "pinv"}, {S::adjoint, "adjoint"}}};
};

template <>
struct dpm::experiments::Choices<dpm::diffusion::inverse::PigdmGuidance> {
  using G = dpm::diffusion::inverse::PigdmGuidance;
  static constexpr std::array<std::pair<G, const char*>, 2> values{
      {{G::noiseless, "noiseless"}, {G::noisy, "noisy"}}};
};

namespace dpm::experiments {

// A RED-Diff setting an ablation varies; elsewhere the plan's own.
struct RedDiffVariant {
  diffusion::inverse::RedDiffWeighting weighting = diffusion::inverse::RedDiffWeighting::linear;
  double lambda = 0.25;
  diffusion::inverse::StepOrder order = diffusion::inverse::StepOrder::descending;

  std::string name() const;  // "linear, lambda 0.25, descending"
};

// The solvers' fields of a plan; defaults follow the authors' configs (docs/inverse.md).
struct InverseSolverPlan {
  std::vector<InverseSolver> solvers{InverseSolver::red_diff, InverseSolver::dps,
                                     InverseSolver::pigdm, InverseSolver::ddrm};
  int64_t red_diff_steps = 50;
  double red_diff_lr = 0.1;
  double red_diff_lambda = 0.25;
  diffusion::inverse::RedDiffWeighting red_diff_weighting =
      diffusion::inverse::RedDiffWeighting::linear;
  diffusion::inverse::RedDiffDataTerm red_diff_data_term =
      diffusion::inverse::RedDiffDataTerm::authors_mean;
  diffusion::inverse::RedDiffStart red_diff_start =
      diffusion::inverse::RedDiffStart::pseudo_inverse;
  int64_t dps_steps = 0;  // 0: every step
  double dps_zeta = 1.0;
  double dps_eta = 1.0;
  int64_t pigdm_steps = 50;
  double pigdm_eta = 0.0;
  double pigdm_weight = 1.0;
  diffusion::inverse::PigdmGuidance pigdm_guidance = diffusion::inverse::PigdmGuidance::noiseless;
  int64_t ddrm_steps = 20;
  double ddrm_eta = 0.85;
  double ddrm_eta_b = 1.0;

  // Visits the solvers' fields; a derived plan's fields() calls it.
  template <typename Self, typename Visit>
  static void solver_fields(Self& plan, Visit&& visit) {
    visit("solvers", plan.solvers);
    visit("red_diff_steps", plan.red_diff_steps);
    visit("red_diff_lr", plan.red_diff_lr);
    visit("red_diff_lambda", plan.red_diff_lambda);
    visit("red_diff_weighting", plan.red_diff_weighting);
    visit("red_diff_data_term", plan.red_diff_data_term);
    visit("red_diff_start", plan.red_diff_start);
    visit("dps_steps", plan.dps_steps);
    visit("dps_zeta", plan.dps_zeta);
    visit("dps_eta", plan.dps_eta);
    visit("pigdm_steps", plan.pigdm_steps);
    visit("pigdm_eta", plan.pigdm_eta);
    visit("pigdm_weight", plan.pigdm_weight);
    visit("pigdm_guidance", plan.pigdm_guidance);
    visit("ddrm_steps", plan.ddrm_steps);
    visit("ddrm_eta", plan.ddrm_eta);
    visit("ddrm_eta_b", plan.ddrm_eta_b);
  }

  void validate_solvers() const;  // throws PlanError naming the field
  // The solver's grid steps on a schedule of T steps (DPS's 0: all T).
  int64_t steps(InverseSolver solver, int64_t T) const;
  // Throws PlanError naming the steps field of a listed solver whose steps exceed T.
  void require_steps_within(int64_t T) const;
  static const char* steps_field(InverseSolver solver);  // "dps_steps"

  // Runs `solver` with these settings on `steps` grid steps (a variant overrides RED-Diff's).
  diffusion::inverse::Restored solve(InverseSolver solver, int64_t steps,
                                     const std::optional<RedDiffVariant>& variant,
                                     diffusion::inverse::MeasurementOperator& op,
                                     const diffusion::inverse::Problem& problem,
                                     const diffusion::inverse::Prior& prior, Rng& rng) const;
};

// One solver run as the ranks of a run exchange it (dist::share_items): its estimate, cost and
// time.
struct SolverRun {
  std::vector<double> x_hat;  // [n, sample_shape...] row-major
  int64_t evaluations = 0, backward_passes = 0;
  double seconds = 0;

  static SolverRun of(const diffusion::inverse::Restored& restored, double seconds);
  std::vector<std::byte> to_bytes() const;
  static SolverRun from_bytes(const std::vector<std::byte>& bytes);
};

// A solver run's cost in network forward passes, for sharing runs out over ranks: one per step,
// and two more for the backward pass of the solvers that take J_eps^T products (DPS, PiGDM).
double solver_cost(InverseSolver solver, int64_t steps);

// Runs an inverse-problem experiment's units over `ranks`: every rank measures
// (measure(unit) for each unit that is not a solve, in order: cheap, and what the solvers need),
// each solve unit runs on one rank (solve(unit); the costliest first, each to the least-loaded
// rank) and is shared, and every rank turns it into its output (solved(unit, run)), so the outputs
// are the single process's. Returns one output per unit, in unit order. progress.begin(the units
// this rank runs), one advance each.
template <typename Unit, typename Measure, typename Solve, typename Solved>
auto run_inverse_units(const std::vector<Unit>& units, dist::Communicator& ranks,
                       report::Progress& progress, Measure&& measure, Solve&& solve,
                       Solved&& solved) {
  std::vector<decltype(measure(units.front()))> outputs(units.size());
  std::vector<size_t> solves;
  std::vector<double> costs;
  for (size_t i = 0; i < units.size(); ++i)
    if (units[i].kind == decltype(units[i].kind)::solve) {
      solves.push_back(i);
      costs.push_back(solver_cost(units[i].solver, units[i].steps));
    }
  const std::vector<int> owners =
      dist::assign_items(static_cast<int64_t>(solves.size()), ranks.size(), costs);
  progress.begin(static_cast<int64_t>(units.size() - solves.size()) +
                 dist::items_of(owners, ranks.rank()));
  for (size_t i = 0; i < units.size(); ++i) {
    if (units[i].kind == decltype(units[i].kind)::solve) continue;
    outputs[i] = measure(units[i]);
    progress.advance(units[i].stage());
  }
  const std::vector<std::vector<std::byte>> runs = dist::share_items(ranks, owners, [&](int64_t j) {
    const Unit& unit = units[solves[j]];
    progress.status(unit.stage());
    std::vector<std::byte> run = solve(unit).to_bytes();
    progress.advance(unit.stage());
    return run;
  });
  for (size_t j = 0; j < solves.size(); ++j)
    outputs[solves[j]] = solved(units[solves[j]], SolverRun::from_bytes(runs[j]));
  progress.finish();
  return outputs;
}

}  // namespace dpm::experiments
