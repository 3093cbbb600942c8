#include "experiments/inverse_bench.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "autograd/rng.hpp"
#include "diffusion/inverse/ddrm.hpp"
#include "diffusion/inverse/dps.hpp"
#include "diffusion/inverse/operators.hpp"
#include "diffusion/inverse/posterior.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/prior_inputs.hpp"
#include "experiments/report/format.hpp"

namespace dpm::experiments {
namespace {

namespace inv = diffusion::inverse;
using Kind = InverseBenchUnitKind;

// eps*'s schedule when no network fixes it: the paper's, at the T of its trained networks.
constexpr int64_t kDefaultOracleT = 300;

// Random streams, each a function of the seed and what it is for, so that a unit's draws do not
// depend on which other units run: the clean samples, each task's operator, each (task, sigma_y)
// case's measurement noise and each solver's noise on a case (the same for both predictors, so
// their rows are paired).
enum Stream : uint64_t { samples_stream, operator_stream, noise_stream, solver_stream };

}  // namespace

std::string InverseTask::name() const {
  if (kind == InverseTaskKind::compressed_sensing)
    return "cs M=" + std::to_string(static_cast<int64_t>(value));
  return "inpaint " + report::number(100.0 * value) + "%";
}

std::string InverseBenchUnit::stage() const {
  std::string text = task.name() + ", sigma_y " + report::number(sigma_y) + ": ";
  if (kind == Kind::references) return text + "references";
  text += std::string(choice_name(solver)) + " (" + std::to_string(steps) + " steps), " + predictor;
  return variant ? text + ", " + variant->name() : text;
}

InverseBenchPlan InverseBenchPlan::quick() {
  InverseBenchPlan plan;
  plan.cs_rows = {8};
  plan.missing = {0.5};
  plan.sigma_y = {0.1};
  plan.samples = 16;
  plan.red_diff_steps = 10;
  plan.dps_steps = 20;
  plan.pigdm_steps = 10;
  plan.ddrm_steps = 5;
  plan.nfe_steps = {2, 10};
  plan.ablation_lambda = {0.1, 0.5};
  return plan;
}

void InverseBenchPlan::validate() const {
  if (parts.empty()) throw PlanError("parts", "is empty");
  if (cs_rows.empty() && missing.empty())
    throw PlanError("cs_rows", "no task: give compressed-sensing rows or inpainting fractions");
  if (!cs_rows.empty()) require_list("cs_rows", cs_rows, 1, 100000);
  if (!missing.empty()) {
    require_list("missing", missing);
    for (double f : missing) require_finite("missing", f, 0.0, true, 0.99);
  }
  require_list("sigma_y", sigma_y);
  for (double s : sigma_y) require_finite("sigma_y", s, 0.0, false);
  require_range("samples", samples, 2, 1'000'000);
  if (!schedule.empty()) {
    try {
      diffusion::parse_schedule_kind(schedule);
    } catch (const std::invalid_argument& e) {
      throw PlanError("schedule", e.what());
    }
  }
  if (T != 0) require_range("T", T, 1, 100000);
  validate_solvers();
  if (runs(InverseBenchPart::nfe)) require_list("nfe_steps", nfe_steps, 1, 100000);
  if (runs(InverseBenchPart::ablation)) {
    require_list("ablation_lambda", ablation_lambda);
    for (double l : ablation_lambda) require_finite("ablation_lambda", l, 0.0, true);
  }
}

InverseBenchPlan InverseBenchPlan::from_json(const nlohmann::json& json) {
  InverseBenchPlan plan = plan_from_json<InverseBenchPlan>(json);
  plan.validate();
  return plan;
}

bool InverseBenchPlan::runs(InverseBenchPart part) const {
  return std::find(parts.begin(), parts.end(), part) != parts.end();
}

std::vector<InverseTask> InverseBenchPlan::tasks() const {
  std::vector<InverseTask> list;
  for (int64_t m : cs_rows)
    list.push_back({InverseTaskKind::compressed_sensing, static_cast<double>(m)});
  for (double f : missing) list.push_back({InverseTaskKind::inpainting, f});
  return list;
}

std::vector<std::string> InverseBenchPlan::predictors() const {
  if (checkpoint.empty()) return {"oracle"};
  return {"oracle", "network"};
}

namespace {

// The ablation's RED-Diff settings: every weighting, every lambda, every step order, each
// varied alone from the plan's own setting (which appears once).
std::vector<RedDiffVariant> ablation_variants(const InverseBenchPlan& plan) {
  const RedDiffVariant base{plan.red_diff_weighting, plan.red_diff_lambda,
                            inv::StepOrder::descending};
  std::vector<RedDiffVariant> variants;
  std::set<std::string> seen;
  auto add = [&](RedDiffVariant v) {
    if (seen.insert(v.name()).second) variants.push_back(v);
  };
  for (const auto& [weighting, name] : Choices<inv::RedDiffWeighting>::values)
    add({weighting, base.lambda, base.order});
  for (double lambda : plan.ablation_lambda) add({base.weighting, lambda, base.order});
  for (const auto& [order, name] : Choices<inv::StepOrder>::values)
    add({base.weighting, base.lambda, order});
  return variants;
}

}  // namespace

std::vector<InverseBenchUnit> InverseBenchPlan::units() const {
  if (T == 0 && !checkpoint.empty())
    throw PlanError("T", "is the checkpoint's T, unknown before it is read (read_inputs)");
  const int64_t steps_T = T == 0 ? kDefaultOracleT : T;
  const std::vector<InverseTask> task_list = tasks();
  std::vector<InverseBenchUnit> units;
  auto solve = [&](InverseBenchPart part, const InverseTask& task, double sigma,
                   const std::string& predictor, InverseSolver solver, int64_t steps,
                   std::optional<RedDiffVariant> variant = std::nullopt) {
    units.push_back({Kind::solve, part, task, sigma, predictor, solver, steps, variant});
  };
  const bool table = runs(InverseBenchPart::table);
  for (const InverseTask& task : task_list)
    for (double sigma : sigma_y) {
      const bool first = task == task_list.front() && sigma == sigma_y.front();
      if (!table && !first) continue;
      InverseBenchUnit references;
      references.task = task;
      references.sigma_y = sigma;
      units.push_back(references);
      if (!table) continue;
      for (const std::string& p : predictors())
        for (InverseSolver solver : solvers)
          solve(InverseBenchPart::table, task, sigma, p, solver, steps(solver, steps_T));
    }
  const InverseTask& task = task_list.front();
  const double sigma = sigma_y.front();
  if (runs(InverseBenchPart::nfe))
    for (const std::string& p : predictors())
      for (InverseSolver solver : solvers)
        for (int64_t steps : nfe_steps) solve(InverseBenchPart::nfe, task, sigma, p, solver, steps);
  if (runs(InverseBenchPart::ablation))
    for (const std::string& p : predictors())
      for (const RedDiffVariant& v : ablation_variants(*this))
        solve(InverseBenchPart::ablation, task, sigma, p, InverseSolver::red_diff, red_diff_steps,
              v);
  return units;
}

InverseBenchInputs read_inputs(const InverseBenchPlan& given) {
  PriorInputs prior = read_prior_inputs(given.gmm, given.checkpoint);
  InverseBenchInputs in{given, std::move(prior.gmm), std::move(prior.network), prior.network_shape};
  InverseBenchPlan& plan = in.plan;
  plan.gmm = prior.gmm_path;
  if (in.network) {
    const diffusion::Schedule& own = in.network->schedule;
    const std::string own_kind = diffusion::schedule_kind_name(own.kind());
    if (plan.T != 0 && plan.T != own.T())
      throw PlanError("T", "the network was trained with T = " + std::to_string(own.T()) +
                               ", and eps* runs on the network's schedule (drop --T)");
    if (!plan.schedule.empty() && plan.schedule != own_kind)
      throw PlanError("schedule", "the network was trained with the " + own_kind +
                                      " schedule, and eps* runs on it (drop --schedule)");
    plan.T = own.T();
    plan.schedule = own_kind;
  }
  if (plan.T == 0) plan.T = kDefaultOracleT;
  if (plan.schedule.empty()) plan.schedule = "paper_linear";
  for (int64_t m : plan.cs_rows)
    if (m > in.gmm.dim)
      throw PlanError("cs_rows", std::to_string(m) + " rows exceed the prior's dimension " +
                                     std::to_string(in.gmm.dim));
  plan.require_steps_within(plan.T);
  for (int64_t steps : plan.runs(InverseBenchPart::nfe) ? plan.nfe_steps : std::vector<int64_t>{})
    if (steps > plan.T)
      throw PlanError("nfe_steps",
                      std::to_string(steps) + " steps exceed T = " + std::to_string(plan.T));
  return in;
}

namespace {

// One task at one sigma_y: the operator, the measurements and the exact posterior mean.
struct MeasuredCase {
  std::shared_ptr<inv::MeasurementOperator> op;
  std::vector<double> y, posterior_mean;
};

std::shared_ptr<inv::MeasurementOperator> make_operator(const InverseTask& task, int64_t dim,
                                                        uint64_t seed) {
  if (task.kind == InverseTaskKind::compressed_sensing)
    return std::make_shared<inv::DenseOperator>(
        inv::make_compressed_sensing(static_cast<int64_t>(task.value), dim, seed));
  return std::make_shared<inv::MaskOperator>(inv::MaskOperator::random(dim, task.value, seed));
}

class Bench {
 public:
  Bench(const InverseBenchInputs& in, InverseBenchResults& results)
      : in_(in),
        plan_(in.plan),
        results_(results),
        schedule_(
            diffusion::Schedule::make(diffusion::parse_schedule_kind(plan_.schedule), plan_.T)),
        oracle_(in.gmm, schedule_) {
    if (in.network) network_ = diffusion::make_predictor(*in.network);
    Rng sample_rng(plan_.seed, samples_stream);
    const Tensor x0 = in.gmm.sample(plan_.samples, sample_rng);
    results.x0.assign(x0.data(), x0.data() + x0.numel());
  }

  // A references unit: the case's measurements, kept for its solvers, and the reference entries.
  std::vector<InverseBenchEntry> measure(const InverseBenchUnit& unit);
  // A solve unit (its case measured first), and its entry.
  SolverRun solve(const InverseBenchUnit& unit);
  InverseBenchEntry solved_entry(const InverseBenchUnit& unit, const SolverRun& run) const;

 private:
  int64_t task_index(const InverseTask& task) const {
    const std::vector<InverseTask> tasks = plan_.tasks();
    return std::find(tasks.begin(), tasks.end(), task) - tasks.begin();
  }
  int64_t case_index(const InverseBenchUnit& unit) const {
    const auto sigma = std::find(plan_.sigma_y.begin(), plan_.sigma_y.end(), unit.sigma_y);
    return task_index(unit.task) * static_cast<int64_t>(plan_.sigma_y.size()) +
           (sigma - plan_.sigma_y.begin());
  }

  InverseBenchEntry entry(const InverseBenchUnit& unit, const std::string& predictor,
                          const std::string& method, const std::vector<double>& x_hat,
                          const std::vector<double>& posterior_mean, double seconds) const;

  const InverseBenchInputs& in_;
  const InverseBenchPlan& plan_;
  InverseBenchResults& results_;
  diffusion::Schedule schedule_;
  diffusion::GmmOracle oracle_;
  std::shared_ptr<diffusion::NetworkPredictor> network_;
  std::map<int64_t, MeasuredCase> cases_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<InverseBenchEntry> Bench::measure(const InverseBenchUnit& unit) {
  const int64_t dim = in_.gmm.dim, n = plan_.samples;
  MeasuredCase c;
  c.op = make_operator(unit.task, dim,
                       Rng(plan_.seed, operator_stream).split(task_index(unit.task)).next_u64());
  {
    inv::ScopedBatch batch(*c.op, n);
    c.y = c.op->apply(results_.x0);
  }
  Rng noise = Rng(plan_.seed, noise_stream).split(case_index(unit));
  for (double& v : c.y) v += unit.sigma_y * noise.normal();

  std::vector<InverseBenchEntry> entries;
  auto start = std::chrono::steady_clock::now();
  c.posterior_mean = inv::posterior_mean(in_.gmm, *c.op, c.y, unit.sigma_y);
  entries.push_back(
      entry(unit, "", "posterior-mean", c.posterior_mean, c.posterior_mean, seconds_since(start)));
  start = std::chrono::steady_clock::now();
  const std::vector<double> linear = inv::lmmse(in_.gmm, *c.op, c.y, unit.sigma_y);
  entries.push_back(entry(unit, "", "lmmse", linear, c.posterior_mean, seconds_since(start)));
  start = std::chrono::steady_clock::now();
  const std::vector<double> ls = inv::least_squares(*c.op, c.y);
  entries.push_back(entry(unit, "", "ls", ls, c.posterior_mean, seconds_since(start)));

  results_.measurements.push_back(
      {unit.task.name(), unit.sigma_y, c.op->output_dim(), inv::dense_matrix(*c.op), c.y});
  cases_.emplace(case_index(unit), std::move(c));
  return entries;
}

SolverRun Bench::solve(const InverseBenchUnit& unit) {
  MeasuredCase& c = cases_.at(case_index(unit));
  const bool network = unit.predictor == "network";
  const inv::Prior prior = network ? inv::network_prior(*network_) : inv::oracle_prior(oracle_);
  const inv::Problem problem{c.y, unit.sigma_y, network ? in_.network_shape : Shape{in_.gmm.dim}};
  Rng rng = Rng(plan_.seed, solver_stream)
                .split(case_index(unit))
                .split(static_cast<uint64_t>(unit.solver));
  const auto start = std::chrono::steady_clock::now();
  const inv::Restored restored =
      plan_.solve(unit.solver, unit.steps, unit.variant, *c.op, problem, prior, rng);
  return SolverRun::of(restored, seconds_since(start));
}

InverseBenchEntry Bench::solved_entry(const InverseBenchUnit& unit, const SolverRun& run) const {
  InverseBenchEntry e = entry(unit, unit.predictor, choice_name(unit.solver), run.x_hat,
                              cases_.at(case_index(unit)).posterior_mean, run.seconds);
  e.steps = unit.steps;
  e.evaluations = run.evaluations;
  e.backward_passes = run.backward_passes;
  return e;
}

InverseBenchEntry Bench::entry(const InverseBenchUnit& unit, const std::string& predictor,
                               const std::string& method, const std::vector<double>& x_hat,
                               const std::vector<double>& posterior_mean, double seconds) const {
  InverseBenchEntry e;
  e.part = unit.part;
  e.task = unit.task.name();
  e.sigma_y = unit.sigma_y;
  e.predictor = predictor;
  e.method = method;
  e.variant = unit.variant ? unit.variant->name() : "";
  e.score = inv::score_restoration(results_.x0, x_hat, posterior_mean, in_.gmm.dim);
  e.seconds = seconds;
  return e;
}

}  // namespace

InverseBenchResults run(const InverseBenchPlan& given, report::Progress& progress,
                        dist::Communicator& ranks) {
  const auto start = std::chrono::steady_clock::now();
  const InverseBenchInputs in = read_inputs(given);
  InverseBenchResults results;
  results.plan = given;
  results.resolved = in.plan;
  results.dim = in.gmm.dim;
  results.components = in.gmm.components;
  Bench bench(in, results);
  const std::vector<InverseBenchUnit> units = in.plan.units();
  const std::vector<std::vector<InverseBenchEntry>> by_unit = run_inverse_units(
      units, ranks, progress, [&](const InverseBenchUnit& unit) { return bench.measure(unit); },
      [&](const InverseBenchUnit& unit) { return bench.solve(unit); },
      [&](const InverseBenchUnit& unit, const SolverRun& run) {
        return std::vector<InverseBenchEntry>{bench.solved_entry(unit, run)};
      });
  for (const std::vector<InverseBenchEntry>& entries : by_unit)
    results.entries.insert(results.entries.end(), entries.begin(), entries.end());
  results.seconds = seconds_since(start);
  return results;
}

}  // namespace dpm::experiments
