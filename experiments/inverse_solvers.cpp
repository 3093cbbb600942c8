#include "experiments/inverse_solvers.hpp"

#include <stdexcept>
#include <string>

#include "diffusion/inverse/ddrm.hpp"
#include "diffusion/inverse/dps.hpp"
#include "distributed/shared_items.hpp"
#include "experiments/report/format.hpp"

namespace dpm::experiments {

namespace inv = diffusion::inverse;

std::string RedDiffVariant::name() const {
  return std::string(choice_name(weighting)) + ", lambda " + report::number(lambda) + ", " +
         choice_name(order);
}

void InverseSolverPlan::validate_solvers() const {
  if (solvers.empty()) throw PlanError("solvers", "is empty");
  require_range("red_diff_steps", red_diff_steps, 1, 100000);
  require_finite("red_diff_lr", red_diff_lr, 0.0, false);
  require_finite("red_diff_lambda", red_diff_lambda, 0.0, true);
  require_range("dps_steps", dps_steps, 0, 100000);
  require_finite("dps_zeta", dps_zeta, 0.0, true);
  require_finite("dps_eta", dps_eta, 0.0, true, 1.0);
  require_range("pigdm_steps", pigdm_steps, 1, 100000);
  require_finite("pigdm_eta", pigdm_eta, 0.0, true, 1.0);
  require_finite("pigdm_weight", pigdm_weight, 0.0, true);
  require_range("ddrm_steps", ddrm_steps, 1, 100000);
  require_finite("ddrm_eta", ddrm_eta, 0.0, true, 1.0);
  require_finite("ddrm_eta_b", ddrm_eta_b, 0.0, true, 1.0);
}

int64_t InverseSolverPlan::steps(InverseSolver solver, int64_t T) const {
  switch (solver) {
    case InverseSolver::red_diff: return red_diff_steps;
    case InverseSolver::dps: return dps_steps == 0 ? T : dps_steps;
    case InverseSolver::pigdm: return pigdm_steps;
    case InverseSolver::ddrm: return ddrm_steps;
  }
  throw std::logic_error("InverseSolverPlan::steps: unknown solver");
}

void InverseSolverPlan::require_steps_within(int64_t T) const {
  for (InverseSolver solver : solvers)
    if (steps(solver, T) > T)
      throw PlanError(steps_field(solver), std::to_string(steps(solver, T)) +
                                               " steps exceed T = " + std::to_string(T));
}

const char* InverseSolverPlan::steps_field(InverseSolver solver) {
  switch (solver) {
    case InverseSolver::red_diff: return "red_diff_steps";
    case InverseSolver::dps: return "dps_steps";
    case InverseSolver::pigdm: return "pigdm_steps";
    case InverseSolver::ddrm: return "ddrm_steps";
  }
  throw std::logic_error("InverseSolverPlan::steps_field: unknown solver");
}

inv::Restored InverseSolverPlan::solve(InverseSolver solver, int64_t steps,
                                       const std::optional<RedDiffVariant>& variant,
                                       inv::MeasurementOperator& op, const inv::Problem& problem,
                                       const inv::Prior& prior, Rng& rng) const {
  const inv::StepGrid grid{0, 0, steps};
  switch (solver) {
    case InverseSolver::red_diff: {
      inv::RedDiffSettings s;
      s.grid = grid;
      s.lr = red_diff_lr;
      s.lambda = red_diff_lambda;
      s.weighting = red_diff_weighting;
      s.data_term = red_diff_data_term;
      s.start = red_diff_start;
      if (variant) {
        s.weighting = variant->weighting;
        s.lambda = variant->lambda;
        s.order = variant->order;
      }
      return inv::red_diff(s, op, problem, prior, rng);
    }
    case InverseSolver::dps: return inv::dps({grid, dps_zeta, dps_eta}, op, problem, prior, rng);
    case InverseSolver::pigdm:
      return inv::pigdm({grid, pigdm_guidance, pigdm_weight, pigdm_eta}, op, problem, prior, rng);
    case InverseSolver::ddrm: return inv::ddrm({grid, ddrm_eta, ddrm_eta_b}, op, problem, prior, rng);
  }
  throw std::logic_error("InverseSolverPlan::solve: unknown solver");
}

double solver_cost(InverseSolver solver, int64_t steps) {
  const bool backward = solver == InverseSolver::dps || solver == InverseSolver::pigdm;
  return static_cast<double>(steps) * (backward ? 3.0 : 1.0);
}

namespace {
struct SolverRunHeader {
  int64_t evaluations, backward_passes;
  double seconds;
};
constexpr size_t kHeaderBytes = sizeof(SolverRunHeader);
}  // namespace

SolverRun SolverRun::of(const inv::Restored& restored, double seconds) {
  return {restored.x_hat.values, restored.evaluations, restored.backward_passes, seconds};
}

std::vector<std::byte> SolverRun::to_bytes() const {
  const SolverRunHeader header{evaluations, backward_passes, seconds};
  std::vector<std::byte> bytes = dist::to_bytes(&header, 1);
  const std::vector<std::byte> values = dist::to_bytes(x_hat.data(), x_hat.size());
  bytes.insert(bytes.end(), values.begin(), values.end());
  return bytes;
}

SolverRun SolverRun::from_bytes(const std::vector<std::byte>& bytes) {
  if (bytes.size() < kHeaderBytes || (bytes.size() - kHeaderBytes) % sizeof(double) != 0)
    throw std::logic_error("SolverRun::from_bytes: " + std::to_string(bytes.size()) +
                           " bytes are no solver run");
  const auto values_at = bytes.begin() + kHeaderBytes;
  const SolverRunHeader header = dist::from_bytes<SolverRunHeader>({bytes.begin(), values_at})[0];
  return {dist::from_bytes<double>({values_at, bytes.end()}), header.evaluations,
          header.backward_passes, header.seconds};
}

}  // namespace dpm::experiments
