#include "experiments/lipschitz_audit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <stdexcept>

#include "autograd/rng.hpp"
#include "datasets/data_files.hpp"
#include "datasets/dense.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/jacobian.hpp"
#include "diffusion/oracle_jacobian.hpp"
#include "diffusion/sampler.hpp"
#include "diffusion/step_norms.hpp"
#include "distributed/shared_items.hpp"
#include "experiments/report/format.hpp"
#include "nn/lipschitz/singular_values.hpp"

namespace dpm::experiments {
namespace {

using namespace dpm::diffusion;
namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Nearby pairs sit this far apart, relative to max(||x||, 1): ten times the finite-difference
// step, so they check the measured norm at a genuinely finite separation.
constexpr double kNearbySeparation = 1e-2;
// A value counts as exceeding a bound only beyond rounding: the log-concave bound is attained
// by wide Gaussians.
constexpr double kExceedMargin = 1e-9;

using datasets::row_distance;
using datasets::row_norm;

// max over pairs i < j of ||f_i - f_j|| / ||x_i - x_j|| (rows of n values); NaN for < 2 rows.
double max_pair_ratio(const std::vector<double>& x, const std::vector<double>& f, int64_t n) {
  const int64_t rows = static_cast<int64_t>(x.size()) / n;
  double best = rows < 2 ? kNaN : 0.0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = i + 1; j < rows; ++j) {
      const double dx = row_distance(x.data() + i * n, x.data() + j * n, n);
      if (dx > 0) best = std::max(best, row_distance(f.data() + i * n, f.data() + j * n, n) / dx);
    }
  return best;
}

// max over rows i of ||f_i - g_i|| / ||x_i - z_i||.
double max_matched_ratio(const double* x, const double* f, const double* z, const double* g,
                         int64_t rows, int64_t n) {
  double best = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const double dx = row_distance(x + i * n, z + i * n, n);
    if (dx > 0) best = std::max(best, row_distance(f + i * n, g + i * n, n) / dx);
  }
  return best;
}

DoubleBatch batch_of(std::vector<double> values, int64_t rows, const Shape& sample_shape) {
  std::vector<int64_t> dims = sample_shape.vec();
  dims.insert(dims.begin(), rows);
  DoubleBatch batch{Shape(dims), std::move(values)};
  batch.validate("run_lipschitz_audit");
  return batch;
}

std::vector<double> first_rows(const std::vector<double>& x, int64_t rows, int64_t n) {
  return {x.begin(), x.begin() + rows * n};
}

double fraction_above(const std::vector<double>& values, double bound) {
  int64_t above = 0;
  for (double v : values) above += v > bound * (1 + kExceedMargin) ? 1 : 0;
  return values.empty() ? kNaN : static_cast<double>(above) / static_cast<double>(values.size());
}

// The inputs x_ts, ..., x_1 of the steps of mean forwarding from `x` (the state at start_step);
// the result x_0 is left in x.
std::vector<DoubleBatch> mean_forwarding_states(NoisePredictor& predictor, const Schedule& schedule,
                                                DoubleBatch& x, int64_t start_step) {
  std::vector<DoubleBatch> states;
  for (int64_t t = start_step; t >= 1; --t) {
    states.push_back(x);
    x.values = reverse_mean(schedule, t, x.values, predictor.predict_eps(x, t).values);
  }
  return states;
}

// s J_mu(x_1) ... J_mu(x_ts) from the step inputs (states[0] = x_ts), one eps Jacobian each.
template <typename MakeEpsJacobian>
ChainJacobian denoiser_chain(const std::vector<DoubleBatch>& states, const Schedule& schedule,
                             int64_t start_step, double scale, MakeEpsJacobian make) {
  std::vector<std::shared_ptr<BatchJacobian>> steps;
  for (size_t k = 0; k < states.size(); ++k) {
    const int64_t t = start_step - static_cast<int64_t>(k);
    steps.push_back(mean_jacobian(make(t, states[k]), schedule, t));
  }
  return ChainJacobian(std::move(steps), scale);
}

// The Jacobian norms keep every direction they explore (no restart): each costs network passes.
lipschitz::KrylovSettings norm_settings(const AuditPlan& plan, int max_iterations) {
  lipschitz::KrylovSettings krylov;
  krylov.tolerance = plan.tolerance;
  krylov.max_iterations = max_iterations;
  krylov.min_iterations = std::min(krylov.min_iterations, max_iterations);
  krylov.max_subspace = std::max(2, max_iterations);
  return krylov;
}

// The measured norms of D at the rows of `start` (= s y), per row: the chain's, or s at start
// step 0 (D is then y -> s y). D(y) goes to *result.
template <typename MakeEpsJacobian>
std::vector<double> denoiser_norms(NoisePredictor& predictor, const Schedule& schedule,
                                   DoubleBatch start, int64_t start_step, double scale,
                                   const AuditPlan& plan, uint64_t seed, MakeEpsJacobian make,
                                   DoubleBatch* result = nullptr) {
  std::vector<DoubleBatch> states = mean_forwarding_states(predictor, schedule, start, start_step);
  if (result) *result = start;
  if (states.empty()) return std::vector<double>(static_cast<size_t>(start.batch()), scale);
  ChainJacobian chain = denoiser_chain(states, schedule, start_step, scale, make);
  const int iterations = static_cast<int>(plan.denoiser_iterations);
  if (plan.denoiser_method == DenoiserMethod::forward)
    return lipschitz::forward_iteration(chain, iterations, seed).sigma;
  lipschitz::KrylovSettings krylov = norm_settings(plan, iterations);
  krylov.seed = seed;
  return lipschitz::top_singular_value(chain, krylov).sigma;
}

void validate_inputs(const AuditInputs& in, const AuditPlan& plan) {
  if (!in.network) throw std::invalid_argument("run_lipschitz_audit: no network");
  const int64_t n = in.sample_shape.numel();
  if (in.sample_shape.ndim() < 1 || n < 1)
    throw std::invalid_argument("run_lipschitz_audit: bad sample shape " + in.sample_shape.str());
  if (!in.clean.defined() || in.clean.ndim() < 1 || in.clean.size(0) < 1 ||
      in.clean.numel() != in.clean.size(0) * n)
    throw std::invalid_argument("run_lipschitz_audit: clean samples must be [rows, ...] with " +
                                std::to_string(n) + " values per row (sample shape " +
                                in.sample_shape.str() + "), got " +
                                (in.clean.defined() ? in.clean.shape().str() : "none"));
  if (in.oracle && in.oracle->dim() != n)
    throw std::invalid_argument("run_lipschitz_audit: the GMM has dimension " +
                                std::to_string(in.oracle->dim()) + ", samples have " +
                                std::to_string(n) + " values");
  plan.validate();
}

// Each SNR's matched and start step and input scaling; the measurements come later.
std::vector<DenoiserAudit> denoiser_setups(const AuditPlan& plan, const Schedule& schedule) {
  std::vector<DenoiserAudit> denoisers;
  for (double snr_db : plan.snr) {
    DenoiserAudit d;
    d.snr_db = snr_db;
    d.snr = std::pow(10.0, snr_db / 10.0);
    d.matched_step = schedule.nearest_step(d.snr);
    d.start_step = d.matched_step - (plan.start == AuditStart::t_hat_minus_1 ? 1 : 0);
    d.scale = std::sqrt(d.snr / (1.0 + d.snr));
    denoisers.push_back(d);
  }
  return denoisers;
}

// The clean rows in double, cycling through the given ones: the samples, and the population of
// the exact statistics with a GMM.
std::vector<double> clean_pool(const AuditInputs& in, const AuditPlan& plan) {
  const int64_t n = in.sample_shape.numel();
  const int64_t pool = std::max(plan.samples, in.oracle ? plan.oracle_samples : 0);
  const Tensor clean = in.clean.contiguous();
  const int64_t available = clean.size(0);
  std::vector<double> x0(static_cast<size_t>(pool * n));
  for (int64_t i = 0; i < pool; ++i)
    std::copy_n(clean.data() + (i % available) * n, n, x0.data() + i * n);
  return x0;
}

// What one step's audit reads.
struct StepContext {
  NetworkPredictor& network;
  const AuditInputs& in;
  const AuditPlan& plan;
  const CertifiedBounds& certified;
  const std::vector<double>& x0;
  const Rng& root;
};

// The pairwise ratios of step s: all pairs of points, and each point against x + delta v along its
// measured top direction for either map (one batched call for both).
void measure_pairs(const StepContext& c, const DoubleBatch& points, const StepJacobianNorms& norms,
                   StepAudit& s) {
  const Schedule& schedule = c.network.schedule();
  const int64_t n = c.in.sample_shape.numel(), t = s.t;
  const std::vector<double> eps = c.network.predict_eps(points, t).values;
  const std::vector<double> mean = reverse_mean(schedule, t, points.values, eps);
  s.eps_random = max_pair_ratio(points.values, eps, n);
  s.mean_random = max_pair_ratio(points.values, mean, n);
  const int64_t rows = c.plan.samples;
  std::vector<double> shifted(static_cast<size_t>(2 * rows * n));
  for (int64_t i = 0; i < rows; ++i) {
    const double delta =
        kNearbySeparation * std::max(row_norm(points.values.data() + i * n, n), 1.0);
    for (int64_t e = 0; e < n; ++e) {
      shifted[i * n + e] = points.values[i * n + e] + delta * norms.eps.direction[i * n + e];
      shifted[(rows + i) * n + e] =
          points.values[i * n + e] + delta * norms.mean.direction[i * n + e];
    }
  }
  const DoubleBatch shifted_batch = batch_of(shifted, 2 * rows, c.in.sample_shape);
  const std::vector<double> shifted_eps = c.network.predict_eps(shifted_batch, t).values;
  const std::vector<double> shifted_mean = reverse_mean(schedule, t, shifted, shifted_eps);
  s.eps_nearby = max_matched_ratio(points.values.data(), eps.data(), shifted.data(),
                                   shifted_eps.data(), rows, n);
  s.mean_nearby = max_matched_ratio(points.values.data(), mean.data(), shifted.data() + rows * n,
                                    shifted_mean.data() + rows * n, rows, n);
}

// The exact statistics of step s over the population xt (its first oracle_samples rows).
void measure_exact_step(const StepContext& c, const std::vector<double>& xt, StepAudit& s) {
  const int64_t n = c.in.sample_shape.numel();
  s.exact = true;
  const ExactStepNorms exact =
      exact_step_norms(*c.in.oracle, first_rows(xt, c.plan.oracle_samples, n), s.t);
  const auto audit_rows = static_cast<size_t>(std::min(c.plan.samples, c.plan.oracle_samples));
  s.exact_eps = PointStatistics::of({exact.eps.begin(), exact.eps.begin() + audit_rows});
  s.exact_cme = PointStatistics::of({exact.cme.begin(), exact.cme.begin() + audit_rows});
  s.exact_cme_population = PointStatistics::of(exact.cme);
  s.exceed_fraction = fraction_above(exact.cme, s.cme_log_concave_upper);
  s.exceed_max_ratio = s.exact_cme_population.max / s.cme_log_concave_upper;
  s.lower_min_ratio =
      s.t > 1 ? *std::min_element(exact.cme.begin(), exact.cme.end()) / s.cme_lower : kNaN;
}

StepAudit audit_step(const StepContext& c, int64_t t) {
  const Schedule& schedule = c.network.schedule();
  const int64_t n = c.in.sample_shape.numel();
  StepAudit s;
  s.t = t;
  s.beta = schedule.beta(t);
  s.alpha = schedule.alpha(t);
  s.abar = schedule.abar(t);
  s.cme_lower = stepwise_cme_lower_bound(schedule, t);
  s.cme_log_concave_upper = stepwise_cme_log_concave_bound(schedule, t);
  s.certified_eps = c.certified.available ? c.certified.eps[t] : kNaN;
  s.certified_mean = c.certified.available ? c.certified.mean[t] : kNaN;

  Rng noise = c.root.split(static_cast<uint64_t>(t));
  const std::vector<double> xt = noisy_points(schedule, t, c.x0, noise);
  const DoubleBatch points =
      batch_of(first_rows(xt, c.plan.samples, n), c.plan.samples, c.in.sample_shape);

  // The network: eps and mu measured in one subspace.
  lipschitz::KrylovSettings krylov = norm_settings(c.plan, static_cast<int>(c.plan.max_iterations));
  krylov.seed = noise.next_u64();
  const StepJacobianNorms norms = measure_step_norms(c.network, t, points, krylov);
  s.empirical_eps = PointStatistics::of(norms.eps.sigma);
  s.empirical_mean = PointStatistics::of(norms.mean.sigma);
  s.eps_converged = norms.eps.converged_count();
  s.mean_converged = norms.mean.converged_count();
  s.iterations = norms.eps.iterations;
  measure_pairs(c, points, norms, s);
  if (c.in.oracle) measure_exact_step(c, xt, s);
  return s;
}

// The denoiser of SNR number k: the network's D on the first denoiser_samples observations, and
// with a GMM the oracle denoiser D* on all `samples` of them.
void audit_denoiser(const StepContext& c, size_t k, DenoiserAudit& d) {
  const Schedule& schedule = c.network.schedule();
  const int64_t n = c.in.sample_shape.numel();
  Rng noise = c.root.split(1'000'000 + k);
  const double sigma = 1.0 / std::sqrt(d.snr);
  std::vector<double> y = first_rows(c.x0, c.plan.samples, n);
  for (double& v : y) v += sigma * noise.normal();
  d.log_concave_bound = denoiser_log_concave_bound(schedule, d.start_step, d.scale);
  d.log10_certified = c.certified.log10_denoiser(d.start_step, d.scale);

  const int64_t rows = c.plan.denoiser_samples;
  const std::vector<double> observed = first_rows(y, rows, n);
  std::vector<double> start = observed;
  for (double& v : start) v *= d.scale;
  const uint64_t seed = noise.next_u64();
  const int64_t evaluations = c.network.evaluations();
  DoubleBatch denoised;
  d.empirical = PointStatistics::of(denoiser_norms(
      c.network, schedule, batch_of(start, rows, c.in.sample_shape), d.start_step, d.scale, c.plan,
      seed,
      [&](int64_t t, const DoubleBatch& x) {
        return std::make_shared<NetworkEpsJacobian>(c.network, t, x, /*keep_graph=*/false);
      },
      &denoised));
  d.iterations = static_cast<int>(c.plan.denoiser_iterations);
  d.network_evaluations = c.network.evaluations() - evaluations;
  d.pairwise_random = max_pair_ratio(observed, denoised.values, n);
  if (!c.in.oracle) return;

  d.exact = true;
  GmmOracle& oracle = *c.in.oracle;
  const std::vector<double> exact = exact_denoiser_norms(oracle, y, d.start_step, d.scale);
  d.exact_norm = PointStatistics::of(exact);
  d.exceed_fraction = fraction_above(exact, d.log_concave_bound);
  // The network's method on D* at the same observations, against D*'s exact norms there.
  std::vector<double> ratios =
      denoiser_norms(oracle, schedule, batch_of(start, rows, c.in.sample_shape), d.start_step,
                     d.scale, c.plan, seed, [&](int64_t t, const DoubleBatch& x) {
                       return std::make_shared<OracleEpsJacobian>(oracle, t, x);
                     });
  for (size_t i = 0; i < ratios.size(); ++i) ratios[i] /= exact[i];
  d.oracle_forward_ratio = PointStatistics::of(ratios);
  d.oracle_forward_ratio_min = *std::min_element(ratios.begin(), ratios.end());
}

// The model shape for the data: the checkpoint's record, else from the samples, the GMM or the
// MLP's width.
Shape audit_model_shape(const AuditData& data, const datasets::TrainingData& trained_on,
                        const Tensor& clean, const std::optional<datasets::Gmm>& gmm) {
  const nlohmann::json model_config = data.checkpoint.model->config();
  if (trained_on.model_shape) return *trained_on.model_shape;
  if (!trained_on.sample_shape && !clean.defined() && !gmm && !nn::takes_flat_vectors(model_config))
    throw PlanError("data",
                    "the checkpoint does not record its sample shape; give "
                    "--data FILE[:tensor] or --gmm FILE");
  std::vector<int64_t> row_dims = clean.defined() ? clean.shape().vec() : std::vector<int64_t>{0};
  row_dims.erase(row_dims.begin());
  const Shape shape = trained_on.sample_shape ? *trained_on.sample_shape
                      : clean.defined()       ? Shape(row_dims)
                      : gmm                   ? Shape{gmm->dim}
                                              : Shape{model_config.at("dim").get<int64_t>()};
  return as_plan_error("data", [&] { return datasets::model_input_shape(model_config, shape); });
}

// The clean samples: the plan's (or the training data's test split), else GMM draws, else N(0, I).
void audit_clean_samples(const AuditPlan& plan, const std::string& data_spec,
                         const std::optional<datasets::Gmm>& gmm, AuditData& data) {
  AuditInputs& in = data.inputs;
  Rng rng = Rng(plan.seed).split(7);
  const int64_t pool = std::max(plan.samples, gmm ? plan.oracle_samples : 0);
  if (in.clean.defined()) {
    if (in.clean.numel() != in.clean.size(0) * in.sample_shape.numel())
      throw PlanError("data", "samples of shape " + in.clean.shape().str() +
                                  " do not fit the network's input " + in.sample_shape.str());
    in.clean_source = data_spec + " (" + std::to_string(in.clean.size(0)) + " rows)";
  } else if (gmm) {
    in.clean = gmm->sample(pool, rng);
    in.clean_source = "draws from the GMM " + data.gmm_path;
  } else {
    std::vector<int64_t> dims = in.sample_shape.vec();
    dims.insert(dims.begin(), pool);
    in.clean = randn(Shape(dims), rng);
    in.clean_source = "N(0, I), a stand-in for unknown unit-power data (no --data, no GMM)";
  }
  if (gmm && gmm->dim != in.sample_shape.numel())
    throw PlanError("gmm", "the GMM has dimension " + std::to_string(gmm->dim) +
                               ", the network takes " + in.sample_shape.str());
  in.clean = datasets::with_sample_shape(in.clean.contiguous(), in.sample_shape);
}

}  // namespace

void AuditPlan::validate() const {
  for (int64_t t : t_grid.values)  // steps(T) checks the grid against T
    if (t < 1) throw PlanError("t_grid", "'" + std::to_string(t) + "' is not a step (1..T)");
  require_list("snr", snr);
  require_range("samples", samples, 1, 1024);
  require_range("denoiser_samples", denoiser_samples, 1, 1024);
  if (denoiser_samples > samples) throw PlanError("denoiser_samples", "must not exceed samples");
  require_range("oracle_samples", oracle_samples, 1, 1'000'000);
  if (!(tolerance >= 0.0 && tolerance <= 1.0))
    throw PlanError("tolerance", report::number(tolerance) + " is not in 0..1");
  require_range("max_iterations", max_iterations, 3, 10000);
  require_range("denoiser_iterations", denoiser_iterations, 1, 1000);
}

std::vector<int64_t> AuditPlan::steps(int64_t T) const {
  if (!t_grid.is_auto()) {
    require_list("t_grid", t_grid.values, 1, T);
    return t_grid.values;
  }
  std::vector<int64_t> grid;
  for (int64_t decade = 1; decade < T; decade *= 10)
    for (int64_t m : {1, 2, 5})
      if (m * decade < T) grid.push_back(m * decade);
  grid.push_back(T);
  return grid;
}

AuditPlan AuditPlan::from_json(const nlohmann::json& json) {
  const AuditPlan plan = plan_from_json<AuditPlan>(json);
  plan.validate();
  return plan;
}

std::unique_ptr<AuditData> read_inputs(const AuditPlan& plan) {
  plan.validate();
  if (plan.checkpoint.empty()) throw PlanError("checkpoint", "is required");
  auto data = std::make_unique<AuditData>(diffusion::load_dpm_checkpoint(plan.checkpoint));
  plan.steps(data->checkpoint.schedule.T());  // the grid fits T

  // The data's GMM and clean samples: the plan's, else the training data directory's files.
  const datasets::TrainingData trained_on =
      datasets::training_data(data->checkpoint.metadata, plan.checkpoint);
  const fs::path data_dir = trained_on.source;
  data->gmm_path = plan.gmm;
  if (data->gmm_path.empty() && !trained_on.source.empty() &&
      fs::exists(data_dir / datasets::kGmmFileName))
    data->gmm_path = (data_dir / datasets::kGmmFileName).string();
  std::string data_spec = plan.data;
  if (data_spec.empty() && !trained_on.source.empty() &&
      fs::exists(data_dir / datasets::kDataFileName))
    data_spec = (data_dir / datasets::kDataFileName).string() + ":test";
  std::optional<datasets::Gmm> gmm;
  if (!data->gmm_path.empty()) gmm = datasets::load_gmm(data->gmm_path);
  AuditInputs& in = data->inputs;
  if (!data_spec.empty()) in.clean = datasets::read_tensor_spec(data_spec, "test");

  in.sample_shape = audit_model_shape(*data, trained_on, in.clean, gmm);
  audit_clean_samples(plan, data_spec, gmm, *data);
  data->network = diffusion::make_predictor(data->checkpoint);
  if (gmm) data->oracle.emplace(*gmm, data->checkpoint.schedule);
  in.network = data->network.get();
  in.oracle = data->oracle ? &*data->oracle : nullptr;
  return data;
}

std::vector<AuditUnit> AuditPlan::units(const Schedule& schedule) const {
  const std::vector<int64_t> requested = steps(schedule.T());
  const std::vector<DenoiserAudit> denoisers = denoiser_setups(*this, schedule);
  std::set<int64_t> grid(requested.begin(), requested.end());
  for (const DenoiserAudit& d : denoisers)
    if (d.start_step >= 1) grid.insert(d.start_step);

  std::vector<AuditUnit> units{
      {AuditUnit::Kind::certify, 0, 0, "layer norms for the certified bounds"}};
  for (int64_t t : grid)
    units.push_back({AuditUnit::Kind::step, t, 0, "step t = " + std::to_string(t)});
  for (size_t k = 0; k < denoisers.size(); ++k)
    units.push_back({AuditUnit::Kind::denoiser, denoisers[k].start_step, k,
                     "denoiser at " + report::number(denoisers[k].snr_db) + " dB (" +
                         std::to_string(denoisers[k].start_step) + " steps)"});
  return units;
}

PointStatistics PointStatistics::of(const std::vector<double>& values) {
  PointStatistics s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) {
    s.max = s.mean = kNaN;
    return s;
  }
  double sum = 0.0;
  for (double v : values) {
    s.max = std::max(s.max, v);
    sum += v;
  }
  s.mean = sum / static_cast<double>(values.size());
  return s;
}

LipschitzAudit run_lipschitz_audit(const AuditPlan& plan, const AuditInputs& in,
                                   report::Progress& progress, dist::Communicator& ranks) {
  validate_inputs(in, plan);
  const auto started = std::chrono::steady_clock::now();
  NetworkPredictor& network = *in.network;
  const Schedule& schedule = network.schedule();
  LipschitzAudit audit;
  audit.plan = plan;
  audit.requested_steps = plan.steps(schedule.T());
  audit.network = network.model().config();
  audit.target = prediction_target_name(network.options().target);
  audit.schedule = schedule.to_json();
  for (int64_t t = 1; t <= schedule.T(); ++t) {
    audit.cme_lower_by_t.push_back(stepwise_cme_lower_bound(schedule, t));
    audit.cme_log_concave_by_t.push_back(stepwise_cme_log_concave_bound(schedule, t));
  }
  audit.sample_shape = in.sample_shape;
  audit.points = in.clean_source;
  audit.denoisers = denoiser_setups(plan, schedule);

  const std::vector<AuditUnit> units = plan.units(schedule);
  const AuditUnit& certify = units.front();  // units() puts it first; every rank runs it
  std::vector<AuditUnit> steps, denoisers;
  for (const AuditUnit& unit : units) {
    if (unit.kind == AuditUnit::Kind::step) steps.push_back(unit);
    if (unit.kind == AuditUnit::Kind::denoiser) denoisers.push_back(unit);
  }
  const std::vector<double> x0 = clean_pool(in, plan);
  const Rng root(plan.seed);
  const StepContext context{network, in, plan, audit.certified, x0, root};
  // Steps cost about the same; a denoiser's cost grows with its start step (its chain's length).
  const std::vector<int> step_owners =
      dist::assign_items(static_cast<int64_t>(steps.size()), ranks.size());
  std::vector<double> chain_lengths;
  for (const AuditUnit& unit : denoisers) chain_lengths.push_back(1.0 + unit.t);
  const std::vector<int> denoiser_owners =
      dist::assign_items(static_cast<int64_t>(denoisers.size()), ranks.size(), chain_lengths);
  progress.begin(1 + dist::items_of(step_owners, ranks.rank()) +
                 dist::items_of(denoiser_owners, ranks.rank()));
  progress.status(certify.stage);
  audit.certified = certify_network(network, in.sample_shape, AuditPlan::kLayerTolerance);
  progress.advance(certify.stage);
  // Each step and each denoiser is computed whole on one rank: the single process's values.
  audit.steps = dist::share_values<StepAudit>(ranks, step_owners, [&](int64_t i) {
    progress.status(steps[i].stage);
    const StepAudit s = audit_step(context, steps[i].t);
    progress.advance(steps[i].stage);
    return s;
  });
  audit.denoisers = dist::share_values<DenoiserAudit>(ranks, denoiser_owners, [&](int64_t i) {
    progress.status(denoisers[i].stage);
    DenoiserAudit d = audit.denoisers[denoisers[i].denoiser];
    audit_denoiser(context, denoisers[i].denoiser, d);
    progress.advance(denoisers[i].stage);
    return d;
  });
  progress.finish();
  audit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return audit;
}

LipschitzAudit run(const AuditPlan& plan, report::Progress& progress) {
  const std::unique_ptr<AuditData> data = read_inputs(plan);
  return run_lipschitz_audit(plan, data->inputs, progress, dist::Communicator::world());
}

}  // namespace dpm::experiments
