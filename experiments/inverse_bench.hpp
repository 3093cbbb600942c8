#pragma once
// The inverse-problem benchmark as an experiment (docs/inverse.md; the solvers are
// diffusion/inverse/): RED-Diff, DPS, PiGDM and DDRM with the exact eps* of a GMM prior and, given
// a checkpoint, a trained network, each scored against the exact posterior mean E[x0 | y] of the
// GMM, beside the LMMSE and least-squares references. Tasks on the prior's vectors: compressed
// sensing with M rows and random inpainting with a fraction missing, each at every sigma_y.
// Parts: the table (every task, sigma_y, predictor and solver), the NFE sweep (each solver at
// several step counts on the first task and sigma_y) and the RED-Diff ablation (weighting,
// lambda and step order on the first task and sigma_y).
//
//   InverseBenchPlan plan;  plan.gmm = "runs/gmm/gmm.safetensors";  plan.validate();
//   const InverseBenchResults results = run(plan, progress);
//   report::write(results, "runs/inverse-bench");  // experiments/inverse_bench_report.hpp
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/inverse/scores.hpp"
#include "distributed/communicator.hpp"
#include "experiments/inverse_solvers.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

enum class InverseBenchPart { table, nfe, ablation };
enum class InverseTaskKind { compressed_sensing, inpainting };

}  // namespace dpm::experiments

template <>
struct dpm::experiments::Choices<dpm::experiments::InverseBenchPart> {
  static constexpr std::array<std::pair<InverseBenchPart, const char*>, 3> values{
      {{InverseBenchPart::table, "table"},
       {InverseBenchPart::nfe, "nfe"},
       {InverseBenchPart::ablation, "ablation"}}};
};

namespace dpm::experiments {

// One measurement operator on the prior's vectors.
struct InverseTask {
  InverseTaskKind kind = InverseTaskKind::compressed_sensing;
  double value = 0;  // compressed sensing: the rows M; inpainting: the fraction missing

  std::string name() const;  // "cs M=16", "inpaint 50%"
  bool operator==(const InverseTask&) const = default;
};

enum class InverseBenchUnitKind {
  references,  // the exact posterior mean, LMMSE and least squares of one task and sigma_y
  solve,       // one solver with one predictor on one task and sigma_y
};

struct InverseBenchUnit {
  InverseBenchUnitKind kind = InverseBenchUnitKind::references;
  InverseBenchPart part = InverseBenchPart::table;
  InverseTask task;
  double sigma_y = 0;
  std::string predictor;  // "oracle" or "network" (solve only)
  InverseSolver solver = InverseSolver::red_diff;
  int64_t steps = 0;                      // the solver's grid steps
  std::optional<RedDiffVariant> variant;  // the ablation's RED-Diff setting

  std::string stage() const;  // "cs M=16, sigma_y 0.1: red-diff, oracle"
};

struct InverseBenchPlan : InverseSolverPlan {
  std::string gmm;  // the prior (gmm.safetensors); empty: the one of the network's training data
  std::string checkpoint;  // a network trained on data of this GMM; empty: eps* only
  std::vector<InverseBenchPart> parts{InverseBenchPart::table, InverseBenchPart::nfe,
                                      InverseBenchPart::ablation};
  std::vector<int64_t> cs_rows{16, 32, 48};      // compressed sensing: M x N Gaussian matrices
  std::vector<double> missing{0.25, 0.5, 0.75};  // random inpainting: the fraction missing
  std::vector<double> sigma_y{0.05, 0.2};
  int64_t samples = 64;  // test samples drawn from the GMM
  std::string schedule;  // eps*'s without a network; empty: the network's, else paper_linear
  int64_t T = 0;         // eps*'s T without a network; 0: the network's, else 300
  std::vector<int64_t> nfe_steps{5, 10, 20, 50, 100};  // the NFE sweep's grid steps (<= T)
  std::vector<double> ablation_lambda{0.05, 0.1, 0.25, 0.5, 1.0};
  uint64_t seed = 0;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("gmm", plan.gmm);
    visit("checkpoint", plan.checkpoint);
    visit("parts", plan.parts);
    visit("cs_rows", plan.cs_rows);
    visit("missing", plan.missing);
    visit("sigma_y", plan.sigma_y);
    visit("samples", plan.samples);
    visit("schedule", plan.schedule);
    visit("T", plan.T);
    solver_fields(plan, visit);
    visit("nfe_steps", plan.nfe_steps);
    visit("ablation_lambda", plan.ablation_lambda);
    visit("seed", plan.seed);
  }

  // A small size for a first look and the tests: one task of each kind at one noise level, 16
  // samples, short step grids (every step count <= 20, so it fits any T >= 20).
  static InverseBenchPlan quick();
  void validate() const;  // throws PlanError naming the field
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static InverseBenchPlan from_json(const nlohmann::json& json);  // validated

  bool runs(InverseBenchPart part) const;
  std::vector<InverseTask> tasks() const;       // compressed sensing first, then inpainting
  std::vector<std::string> predictors() const;  // "oracle", and "network" with a checkpoint
  // The work, in the order of the results' entries: each (task, sigma_y)'s references before its
  // solvers (run() measures every case first, then runs the solvers, shared over the ranks).
  // Throws PlanError("T") when T is still 0 with a checkpoint (read_inputs fills it).
  std::vector<InverseBenchUnit> units() const;
};

// What a plan names, read: the plan with the GMM, schedule and T filled in (from the network when
// there is one), the prior and the network.
struct InverseBenchInputs {
  InverseBenchPlan plan;
  datasets::Gmm gmm;
  std::optional<diffusion::DpmCheckpoint> network;
  Shape network_shape;
};

// Throws PlanError naming the field when the files do not fit the plan (no GMM, a network of
// another schedule or T than the plan names, a task the prior's dimension cannot hold).
InverseBenchInputs read_inputs(const InverseBenchPlan& plan);

struct InverseBenchEntry {
  InverseBenchPart part = InverseBenchPart::table;
  std::string task;
  double sigma_y = 0;
  std::string predictor;  // "oracle", "network"; empty for the references
  std::string method;     // a solver's name, or "posterior-mean", "lmmse", "ls"
  std::string variant;    // the ablation's RED-Diff setting; empty elsewhere
  int64_t steps = 0;      // the solver's grid steps (0 for the references)
  diffusion::inverse::RestorationScore score;
  int64_t evaluations = 0;      // batched predictor evaluations (NFE)
  int64_t backward_passes = 0;  // batched J_eps^T products
  double seconds = 0;
};

// What one (task, sigma_y) was measured on, so that another tool can re-score it: the operator
// as a dense [m, N] matrix and the measurements y [n, m] of the shared clean samples.
struct InverseMeasurements {
  std::string task;
  double sigma_y = 0;
  int64_t rows = 0;                     // m
  std::vector<double> operator_matrix;  // [m, N]
  std::vector<double> y;                // [n, m]
};

struct InverseBenchResults {
  InverseBenchPlan plan;      // as given
  InverseBenchPlan resolved;  // as run
  int64_t dim = 0, components = 0;
  std::vector<double> x0;  // the clean test samples [n, N]
  std::vector<InverseMeasurements> measurements;
  std::vector<InverseBenchEntry> entries;  // in units() order
  double seconds = 0;
};

// Executes resolved.units(), one progress unit each, over `ranks` (under mpirun: every case's
// references on every rank, each solver unit on one rank; run_inverse_units). Collective.
InverseBenchResults run(const InverseBenchPlan& plan, report::Progress& progress,
                        dist::Communicator& ranks = dist::Communicator::world());

}  // namespace dpm::experiments
