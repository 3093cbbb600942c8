#pragma once
// The Lipschitz audit of a trained noise network (docs/protocol.md, Lipschitz facts;
// docs/lipschitz.md): at each step t of a grid, and for the mean-forwarding denoiser D at each
// observation SNR, it puts side by side
//   certified   upper bounds from the network's layer norms (diffusion/lipschitz_bounds.hpp),
//   empirical   lower bounds: the largest Jacobian norm measured at points x_t ~ p_t
//               (diffusion/jacobian.hpp), and pairwise ratios ||f(x) - f(x')|| / ||x - x'||,
//   exact       Jacobian norms of the exact maps at the same points, when the data's GMM is known
//               (eps*, the stepwise CME f_t, and the oracle denoiser D*: oracle_jacobian.hpp), and
//   hyperparameter-only bounds of the exact maps, each valid under its stated assumption:
//               c_t (every prior, lower) and 1 / sqrt(alpha_t) (log-concave priors, upper),
// and counts where the exact ||J_t|| exceeds the log-concave bound.
//
// Points: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for clean samples x_0 (rows of
// AuditInputs::clean, reused cyclically when more are needed) and fresh noise per step;
// observations y = x_0 + n, n ~ N(0, I / snr). Everything is seeded by AuditPlan::seed.
//
// The recipe of docs/design.md, "The experiments layer": AuditPlan (validated, JSON round trip),
// AuditPlan::units (the work the run executes), run(plan, progress) (read_inputs, then
// run_lipschitz_audit on a network of the caller's) and report::write (lipschitz_audit_report.hpp).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/shape.hpp"
#include "autograd/tensor.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/lipschitz_bounds.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "distributed/communicator.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

// Where the denoiser starts: at t_hat, the step matched to the SNR, or one earlier (the authors'
// code).
enum class AuditStart { t_hat, t_hat_minus_1 };
template <>
struct Choices<AuditStart> {
  static constexpr std::array<std::pair<AuditStart, const char*>, 2> values{
      {{AuditStart::t_hat, "t_hat"}, {AuditStart::t_hat_minus_1, "t_hat-1"}}};
};

// How the network's whole denoiser is measured: J v only (forward iteration, the default: the
// J^T u of a whole reverse loop costs a forward with a graph and a backward per step), or Krylov
// norms with both products (top_singular_value; J^T u step by step through the tape).
enum class DenoiserMethod { forward, krylov };
template <>
struct Choices<DenoiserMethod> {
  static constexpr std::array<std::pair<DenoiserMethod, const char*>, 2> values{
      {{DenoiserMethod::forward, "forward"}, {DenoiserMethod::krylov, "krylov"}}};
};

// One unit of the run: the layer norms of the certified bounds, one step t of the grid (the plan's
// steps and every SNR's start step), or one SNR's denoiser.
struct AuditUnit {
  enum class Kind { certify, step, denoiser } kind = Kind::certify;
  int64_t t = 0;        // step: the step; denoiser: its start step
  size_t denoiser = 0;  // denoiser: the index of its SNR in plan.snr
  std::string stage;    // what it measures, in words
};

struct AuditPlan {
  std::string checkpoint;  // a checkpoint of `dpmlab train`
  std::string gmm;         // the data's GMM; "": the training data directory's, if there
  std::string data;  // clean samples FILE[:tensor]; "": the training data's, GMM draws, N(0, I)
  IntegerListOrAuto t_grid;  // the steps; auto: 1, 2, 5, 10, 20, ... below T, then T (steps(T))
  std::vector<double> snr{-20, -10, 0, 10, 20, 30};  // of the denoiser, in dB
  AuditStart start = AuditStart::t_hat;
  int64_t samples = 16;             // points per step for eps and mu; observations for D*
  int64_t denoiser_samples = 4;     // observations for the network's whole denoiser (<= samples)
  int64_t oracle_samples = 512;     // points per step for the exact stepwise statistics (GMM only)
  double tolerance = 1e-3;          // of every measured Jacobian norm (eps and mu)
  int64_t max_iterations = 30;      // J v products per step, at most
  int64_t denoiser_iterations = 3;  // J v products through the whole denoiser
  DenoiserMethod denoiser_method = DenoiserMethod::forward;
  uint64_t seed = 0;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("checkpoint", plan.checkpoint);
    visit("gmm", plan.gmm);
    visit("data", plan.data);
    visit("t_grid", plan.t_grid);
    visit("snr", plan.snr);
    visit("start", plan.start);
    visit("samples", plan.samples);
    visit("denoiser_samples", plan.denoiser_samples);
    visit("oracle_samples", plan.oracle_samples);
    visit("tolerance", plan.tolerance);
    visit("max_iterations", plan.max_iterations);
    visit("denoiser_iterations", plan.denoiser_iterations);
    visit("denoiser_method", plan.denoiser_method);
    visit("seed", plan.seed);
  }
  // Throws PlanError naming the field. The checkpoint is not required here (library callers
  // bring their own network); read_inputs requires it.
  void validate() const;
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static AuditPlan from_json(const nlohmann::json& json);  // validated

  // The t grid for a schedule of T steps; a step outside 1..T is a PlanError naming t_grid.
  std::vector<int64_t> steps(int64_t T) const;
  // What run_lipschitz_audit executes, in order, for a network with this schedule; the progress
  // total is its size.
  std::vector<AuditUnit> units(const diffusion::Schedule& schedule) const;
  // Of the layer norms behind the certified bounds.
  static constexpr double kLayerTolerance = 1e-6;
};

struct AuditInputs {
  diffusion::NetworkPredictor* network = nullptr;
  Shape sample_shape;        // one sample as the network takes it, e.g. [1, 64]
  Tensor clean;              // [n, ...] clean samples x_0 (each row sample_shape.numel() values)
  std::string clean_source;  // where they come from, in words
  diffusion::GmmOracle* oracle = nullptr;  // the data's exact prior, when known
};

// What read_inputs resolves from a plan and owns: the checkpoint's network, the data's GMM
// (the plan's, else the training data directory's) and its clean samples (the plan's, else the
// training data's test split, else GMM draws, else N(0, I)).
struct AuditData {
  explicit AuditData(diffusion::DpmCheckpoint loaded) : checkpoint(std::move(loaded)) {}
  diffusion::DpmCheckpoint checkpoint;
  std::shared_ptr<diffusion::NetworkPredictor> network;
  std::optional<diffusion::GmmOracle> oracle;
  std::string gmm_path;  // "" without a GMM
  AuditInputs inputs;    // points into the above
};

// Errors about the plan's files are PlanErrors naming checkpoint, gmm or data.
std::unique_ptr<AuditData> read_inputs(const AuditPlan& plan);

// Max and mean of per-point values.
struct PointStatistics {
  double max = 0, mean = 0;
  int64_t count = 0;
  static PointStatistics of(const std::vector<double>& values);
};

struct StepAudit {
  int64_t t = 0;
  double beta = 0, alpha = 0, abar = 0;
  // Hyperparameter facts about the exact stepwise CME.
  double cme_lower = 0;              // c_t: ||J_t(x)|| >= c_t at every x, every prior
  double cme_log_concave_upper = 0;  // 1 / sqrt(alpha_t): ||J_t(x)|| <= it, log-concave priors
  // Certified upper bounds on the network (NaN when the network has none).
  double certified_eps = 0, certified_mean = 0;
  // Empirical: measured ||J(x)|| of the network at the points (lower bounds on Lip).
  PointStatistics empirical_eps, empirical_mean;
  int64_t eps_converged = 0, mean_converged = 0;
  int iterations = 0;
  // Pairwise ratios ||f(x) - f(x')|| / ||x - x'||, max: x' = x + 0.01 max(||x||, 1) v along the
  // measured top direction v (nearby), and all pairs of points (random).
  double eps_nearby = 0, eps_random = 0, mean_nearby = 0, mean_random = 0;
  // Exact (GMM only): at the audit points, and over oracle_samples points.
  bool exact = false;
  PointStatistics exact_eps, exact_cme;  // ||J_eps*(x)||, ||J_t(x)|| at the audit points
  PointStatistics exact_cme_population;  // ||J_t(x)|| over the population points
  double exceed_fraction = 0;            // of population points with ||J_t|| > 1 / sqrt(alpha_t)
  double exceed_max_ratio = 0;           // max ||J_t|| sqrt(alpha_t): > 1 where the bound fails
  double lower_min_ratio = 0;  // min ||J_t|| / c_t (>= 1 by the lower bound; NaN at t = 1)
};

struct DenoiserAudit {
  double snr_db = 0, snr = 0;
  int64_t matched_step = 0, start_step = 0;
  double scale = 0;              // s = sqrt(snr / (1 + snr)), the input scaling
  double log_concave_bound = 0;  // s / sqrt(abar_ts): Lip(D) <= it for log-concave priors
  double log10_certified = 0;    // log10 of s prod Lip(mu_theta) (NaN when there is none)
  PointStatistics empirical;     // the measured ||J_D(y)|| of the network's D (a lower bound)
  int iterations = 0;
  double pairwise_random = 0;  // max over pairs of observations
  int64_t network_evaluations = 0;
  bool exact = false;
  PointStatistics exact_norm;  // ||J_D*(y)||, exact, at `samples` observations
  double exceed_fraction = 0;  // of them above log_concave_bound
  // The network's method (denoiser_method) applied to D* at the network's observations, divided
  // by D*'s exact norm there: how much of the norm the method finds.
  PointStatistics oracle_forward_ratio;
  double oracle_forward_ratio_min = 0;
};

struct LipschitzAudit {
  AuditPlan plan;
  std::vector<int64_t> requested_steps;  // plan.steps(T)
  nlohmann::json network;                // the model config
  std::string target;                    // what the network predicts
  nlohmann::json schedule;               // the schedule config
  // Every t = 1..T (index t - 1): the hyperparameter bounds c_t and 1 / sqrt(alpha_t).
  std::vector<double> cme_lower_by_t, cme_log_concave_by_t;
  Shape sample_shape;
  std::string points;  // where the clean samples came from
  diffusion::CertifiedBounds certified;
  std::vector<StepAudit> steps;
  std::vector<DenoiserAudit> denoisers;
  double seconds = 0;
};

// Runs plan.units(schedule): the certify unit on every rank of `ranks`, then each step and each
// denoiser on one rank (dist::assign_items; the denoisers by their chain's length), gathered on
// every rank; the result is the single process's.
// progress.begin(the units this rank runs), one advance each. Collective.
LipschitzAudit run_lipschitz_audit(const AuditPlan& plan, const AuditInputs& inputs,
                                   report::Progress& progress,
                                   dist::Communicator& ranks = dist::Communicator::self());
// The audit of the plan's checkpoint on its data (read_inputs), over the ranks of the run
// (Communicator::world(): under mpirun its units are shared out).
LipschitzAudit run(const AuditPlan& plan, report::Progress& progress);

}  // namespace dpm::experiments
