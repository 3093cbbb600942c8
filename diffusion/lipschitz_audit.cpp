#include "diffusion/lipschitz_audit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/rng.hpp"
#include "datasets/dense.hpp"
#include "diffusion/oracle_jacobian.hpp"
#include "diffusion/sampler.hpp"

namespace dpm::diffusion {
namespace {

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

// The measured norms of D at the rows of `start` (= s y), per row: the chain's, or s at start
// step 0 (D is then y -> s y). D(y) goes to *result.
template <typename MakeEpsJacobian>
std::vector<double> denoiser_norms(NoisePredictor& predictor, const Schedule& schedule,
                                   DoubleBatch start, int64_t start_step, double scale,
                                   const AuditSettings& settings, uint64_t seed,
                                   MakeEpsJacobian make, DoubleBatch* result = nullptr) {
  std::vector<DoubleBatch> states = mean_forwarding_states(predictor, schedule, start, start_step);
  if (result) *result = start;
  if (states.empty()) return std::vector<double>(static_cast<size_t>(start.batch()), scale);
  ChainJacobian chain = denoiser_chain(states, schedule, start_step, scale, make);
  if (settings.denoiser_method == DenoiserMethod::forward)
    return forward_iteration(chain, settings.denoiser_iterations, seed).sigma;
  JacobianNormSettings krylov = settings.norms;
  krylov.max_iterations = settings.denoiser_iterations;
  krylov.min_iterations = std::min(krylov.min_iterations, krylov.max_iterations);
  krylov.seed = seed;
  return jacobian_norm(chain, krylov).sigma;
}

double fraction_above(const std::vector<double>& values, double bound) {
  int64_t above = 0;
  for (double v : values) above += v > bound * (1 + kExceedMargin) ? 1 : 0;
  return values.empty() ? kNaN : static_cast<double>(above) / static_cast<double>(values.size());
}

void validate(const AuditInputs& in, const AuditSettings& s) {
  if (!in.network) throw std::invalid_argument("run_lipschitz_audit: no network");
  const int64_t T = in.network->schedule().T();
  if (s.steps.empty() && s.snr_db.empty())
    throw std::invalid_argument("run_lipschitz_audit: nothing to audit (no steps and no SNRs)");
  for (int64_t t : s.steps)
    if (t < 1 || t > T)
      throw std::invalid_argument("run_lipschitz_audit: step " + std::to_string(t) +
                                  " outside 1.." + std::to_string(T));
  for (double snr : s.snr_db)
    if (!std::isfinite(snr))
      throw std::invalid_argument("run_lipschitz_audit: SNRs must be finite (in dB)");
  if (s.samples < 1 || s.denoiser_samples < 1 || s.denoiser_samples > s.samples ||
      s.oracle_samples < 1 || s.denoiser_iterations < 1)
    throw std::invalid_argument(
        "run_lipschitz_audit: need samples >= 1, 1 <= denoiser_samples <= samples, "
        "oracle_samples >= 1 and denoiser_iterations >= 1, got " +
        std::to_string(s.samples) + ", " + std::to_string(s.denoiser_samples) + ", " +
        std::to_string(s.oracle_samples) + ", " + std::to_string(s.denoiser_iterations));
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
}

// ---------------------------------------------------------------------------------------------
// Reports

std::string format_number(double v, int digits = 4) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*g", digits, v);
  return buffer;
}

// 10^log10_value, also beyond the range of a double ("3.2e+512").
std::string format_power_of_ten(double log10_value) {
  if (!std::isfinite(log10_value)) return format_number(log10_value);
  if (std::abs(log10_value) < 300) return format_number(std::pow(10.0, log10_value), 3);
  const double exponent = std::floor(log10_value);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.2fe%+.0f", std::pow(10.0, log10_value - exponent),
                exponent);
  return buffer;
}

std::string format_statistics(const PointStatistics& s) {
  return format_number(s.max) + " / " + format_number(s.mean);
}

std::string format_percent(double fraction) {
  return std::isnan(fraction) ? "n/a" : format_number(100 * fraction, 3) + "%";
}

nlohmann::json json_number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json json_statistics(const PointStatistics& s) {
  return {{"max", json_number(s.max)}, {"mean", json_number(s.mean)}, {"count", s.count}};
}

using Table = std::vector<std::vector<std::string>>;

// Markdown (| a | b |, right-aligned) or space-aligned text; the first row is the header.
std::string render(const Table& table, bool markdown) {
  std::vector<size_t> width(table.front().size(), 0);
  for (const auto& row : table)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::ostringstream out;
  for (size_t r = 0; r < table.size(); ++r) {
    for (size_t c = 0; c < table[r].size(); ++c) {
      const std::string pad(width[c] - table[r][c].size(), ' ');
      out << (markdown ? "| " : (c ? "  " : "")) << pad << table[r][c] << (markdown ? " " : "");
    }
    out << (markdown ? "|\n" : "\n");
    if (r > 0) continue;
    for (size_t c = 0; c < width.size(); ++c) {
      if (markdown)
        out << '|' << std::string(width[c] + 1, '-') << ':';
      else
        out << (c ? "  " : "") << std::string(width[c], '-');
    }
    out << (markdown ? "|\n" : "\n");
  }
  return out.str();
}

Table network_table(const LipschitzAudit& a) {
  Table table{{"t", "certified eps", "empirical eps max/mean", "exact eps* max/mean",
               "certified mu", "empirical mu max/mean", "pairs eps near/rand", "pairs mu near/rand",
               "iters"}};
  for (const StepAudit& s : a.steps)
    table.push_back({std::to_string(s.t), format_number(s.certified_eps, 3),
                     format_statistics(s.empirical_eps),
                     s.exact ? format_statistics(s.exact_eps) : "n/a",
                     format_number(s.certified_mean, 3), format_statistics(s.empirical_mean),
                     format_number(s.eps_nearby) + " / " + format_number(s.eps_random),
                     format_number(s.mean_nearby) + " / " + format_number(s.mean_random),
                     std::to_string(s.iterations)});
  return table;
}

Table cme_table(const LipschitzAudit& a) {
  Table table{{"t", "c_t (lower, any prior)", "1/sqrt(alpha_t) (upper, log-concave)",
               "exact ||J_t|| max/mean (population)", "> 1/sqrt(alpha_t)",
               "max ||J_t|| sqrt(alpha_t)", "min ||J_t|| / c_t", "empirical mu max"}};
  for (const StepAudit& s : a.steps)
    table.push_back({std::to_string(s.t), format_number(s.cme_lower, 6),
                     format_number(s.cme_log_concave_upper, 6),
                     s.exact ? format_statistics(s.exact_cme_population) : "n/a",
                     s.exact ? format_percent(s.exceed_fraction) : "n/a",
                     s.exact ? format_number(s.exceed_max_ratio) : "n/a",
                     s.exact ? format_number(s.lower_min_ratio) : "n/a",
                     format_number(s.empirical_mean.max)});
  return table;
}

Table denoiser_table(const LipschitzAudit& a) {
  Table table{{"SNR dB", "t_hat", "start", "s", "log-concave bound", "certified",
               "empirical D max/mean", "pairs D", "exact D* max/mean", "D* > bound",
               "D* measured/exact min/mean", "evals"}};
  for (const DenoiserAudit& d : a.denoisers)
    table.push_back({format_number(d.snr_db), std::to_string(d.matched_step),
                     std::to_string(d.start_step), format_number(d.scale),
                     format_number(d.log_concave_bound, 6), format_power_of_ten(d.log10_certified),
                     format_statistics(d.empirical), format_number(d.pairwise_random),
                     d.exact ? format_statistics(d.exact_norm) : "n/a",
                     d.exact ? format_percent(d.exceed_fraction) : "n/a",
                     d.exact ? format_number(d.oracle_forward_ratio_min, 3) + " / " +
                                   format_number(d.oracle_forward_ratio.mean, 3)
                             : "n/a",
                     std::to_string(d.network_evaluations)});
  return table;
}

}  // namespace

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

LipschitzAudit run_lipschitz_audit(const AuditInputs& in, const AuditSettings& settings,
                                   const AuditProgress& progress) {
  validate(in, settings);
  const auto started = std::chrono::steady_clock::now();
  NetworkPredictor& network = *in.network;
  const Schedule& schedule = network.schedule();
  const int64_t n = in.sample_shape.numel();
  LipschitzAudit audit;
  audit.settings = settings;
  audit.network = network.model().config();
  audit.target = prediction_target_name(network.options().target);
  audit.schedule = schedule.to_json();
  audit.sample_shape = in.sample_shape;
  audit.points = in.clean_source;

  for (double snr_db : settings.snr_db) {
    DenoiserAudit d;
    d.snr_db = snr_db;
    d.snr = std::pow(10.0, snr_db / 10.0);
    d.matched_step = schedule.nearest_step(d.snr);
    d.start_step = d.matched_step - (settings.authors_offset ? 1 : 0);
    d.scale = std::sqrt(d.snr / (1.0 + d.snr));
    audit.denoisers.push_back(d);
  }
  std::set<int64_t> grid(settings.steps.begin(), settings.steps.end());
  for (const DenoiserAudit& d : audit.denoisers)
    if (d.start_step >= 1) grid.insert(d.start_step);

  const int64_t total = 1 + static_cast<int64_t>(grid.size() + audit.denoisers.size());
  int64_t done = 0;
  auto report = [&](const std::string& stage) {
    if (progress) progress(done, total, stage);
  };
  report("layer norms for the certified bounds");
  audit.certified = certify_network(network, in.sample_shape, settings.layer_tolerance);
  ++done;

  // Clean rows in double, cycling through the given ones.
  const int64_t pool = std::max(settings.samples, in.oracle ? settings.oracle_samples : 0);
  const Tensor clean = in.clean.contiguous();
  const int64_t available = clean.size(0);
  std::vector<double> x0(static_cast<size_t>(pool * n));
  for (int64_t i = 0; i < pool; ++i)
    std::copy_n(clean.data() + (i % available) * n, n, x0.data() + i * n);

  const Rng root(settings.seed);
  for (int64_t t : grid) {
    report("step t = " + std::to_string(t));
    StepAudit s;
    s.t = t;
    s.beta = schedule.beta(t);
    s.alpha = schedule.alpha(t);
    s.abar = schedule.abar(t);
    s.cme_lower = stepwise_cme_lower_bound(schedule, t);
    s.cme_log_concave_upper = stepwise_cme_log_concave_bound(schedule, t);
    s.certified_eps = audit.certified.available ? audit.certified.eps[t] : kNaN;
    s.certified_mean = audit.certified.available ? audit.certified.mean[t] : kNaN;

    Rng noise = root.split(static_cast<uint64_t>(t));
    std::vector<double> xt(x0.size());
    const double signal = std::sqrt(s.abar), spread = std::sqrt(1.0 - s.abar);
    for (size_t e = 0; e < xt.size(); ++e) xt[e] = signal * x0[e] + spread * noise.normal();
    const DoubleBatch points =
        batch_of(first_rows(xt, settings.samples, n), settings.samples, in.sample_shape);

    // The network: eps and mu = a I + b J_eps measured in one subspace.
    const double a = 1.0 / std::sqrt(s.alpha), b = -s.beta / std::sqrt(1.0 - s.abar) * a;
    NetworkEpsJacobian jacobian(network, t, points);
    JacobianNormSettings norm_settings = settings.norms;
    norm_settings.seed = noise.next_u64();
    const std::vector<JacobianNorms> norms =
        jacobian_norms(jacobian, {AffineCombination{}, AffineCombination{a, b}}, norm_settings);
    s.empirical_eps = PointStatistics::of(norms[0].sigma);
    s.empirical_mean = PointStatistics::of(norms[1].sigma);
    s.eps_converged = norms[0].converged_count();
    s.mean_converged = norms[1].converged_count();
    s.iterations = norms[0].iterations;

    // Pairwise ratios: all pairs of points, and each point against x + delta v along its
    // measured top direction for either map (one batched call for both).
    const std::vector<double> eps = network.predict_eps(points, t).values;
    const std::vector<double> mean = reverse_mean(schedule, t, points.values, eps);
    s.eps_random = max_pair_ratio(points.values, eps, n);
    s.mean_random = max_pair_ratio(points.values, mean, n);
    const int64_t rows = settings.samples;
    std::vector<double> shifted(static_cast<size_t>(2 * rows * n));
    for (int64_t i = 0; i < rows; ++i) {
      const double delta =
          kNearbySeparation * std::max(row_norm(points.values.data() + i * n, n), 1.0);
      for (int64_t e = 0; e < n; ++e) {
        shifted[i * n + e] = points.values[i * n + e] + delta * norms[0].direction[i * n + e];
        shifted[(rows + i) * n + e] =
            points.values[i * n + e] + delta * norms[1].direction[i * n + e];
      }
    }
    const DoubleBatch shifted_batch = batch_of(shifted, 2 * rows, in.sample_shape);
    const std::vector<double> shifted_eps = network.predict_eps(shifted_batch, t).values;
    const std::vector<double> shifted_mean = reverse_mean(schedule, t, shifted, shifted_eps);
    s.eps_nearby = max_matched_ratio(points.values.data(), eps.data(), shifted.data(),
                                     shifted_eps.data(), rows, n);
    s.mean_nearby = max_matched_ratio(points.values.data(), mean.data(), shifted.data() + rows * n,
                                      shifted_mean.data() + rows * n, rows, n);

    if (in.oracle) {
      s.exact = true;
      const ExactStepNorms exact =
          exact_step_norms(*in.oracle, first_rows(xt, settings.oracle_samples, n), t);
      const auto audit_rows =
          static_cast<size_t>(std::min(settings.samples, settings.oracle_samples));
      s.exact_eps = PointStatistics::of({exact.eps.begin(), exact.eps.begin() + audit_rows});
      s.exact_cme = PointStatistics::of({exact.cme.begin(), exact.cme.begin() + audit_rows});
      s.exact_cme_population = PointStatistics::of(exact.cme);
      s.exceed_fraction = fraction_above(exact.cme, s.cme_log_concave_upper);
      s.exceed_max_ratio = s.exact_cme_population.max / s.cme_log_concave_upper;
      s.lower_min_ratio =
          t > 1 ? *std::min_element(exact.cme.begin(), exact.cme.end()) / s.cme_lower : kNaN;
    }
    audit.steps.push_back(s);
    ++done;
  }

  for (size_t k = 0; k < audit.denoisers.size(); ++k) {
    DenoiserAudit& d = audit.denoisers[k];
    report("denoiser at " + format_number(d.snr_db) + " dB (" + std::to_string(d.start_step) +
           " steps)");
    Rng noise = root.split(1'000'000 + k);
    const double sigma = 1.0 / std::sqrt(d.snr);
    std::vector<double> y = first_rows(x0, settings.samples, n);
    for (double& v : y) v += sigma * noise.normal();
    d.log_concave_bound = denoiser_log_concave_bound(schedule, d.start_step, d.scale);
    d.log10_certified = audit.certified.log10_denoiser(d.start_step, d.scale);

    // The network's D on the first denoiser_samples observations.
    const int64_t rows = settings.denoiser_samples;
    const std::vector<double> observed = first_rows(y, rows, n);
    std::vector<double> start = observed;
    for (double& v : start) v *= d.scale;
    const uint64_t seed = noise.next_u64();
    const int64_t evaluations = network.evaluations();
    DoubleBatch denoised;
    d.empirical = PointStatistics::of(denoiser_norms(
        network, schedule, batch_of(start, rows, in.sample_shape), d.start_step, d.scale, settings,
        seed,
        [&](int64_t t, const DoubleBatch& x) {
          return std::make_shared<NetworkEpsJacobian>(network, t, x, /*keep_graph=*/false);
        },
        &denoised));
    d.iterations = settings.denoiser_iterations;
    d.network_evaluations = network.evaluations() - evaluations;
    d.pairwise_random = max_pair_ratio(observed, denoised.values, n);

    if (in.oracle) {
      d.exact = true;
      const std::vector<double> exact = exact_denoiser_norms(*in.oracle, y, d.start_step, d.scale);
      d.exact_norm = PointStatistics::of(exact);
      d.exceed_fraction = fraction_above(exact, d.log_concave_bound);
      // The network's method on D* at the same observations, against D*'s exact norms there.
      GmmOracle& oracle = *in.oracle;
      std::vector<double> ratios =
          denoiser_norms(oracle, schedule, batch_of(start, rows, in.sample_shape), d.start_step,
                         d.scale, settings, seed, [&](int64_t t, const DoubleBatch& x) {
                           return std::make_shared<OracleEpsJacobian>(oracle, t, x);
                         });
      for (size_t i = 0; i < ratios.size(); ++i) ratios[i] /= exact[i];
      d.oracle_forward_ratio = PointStatistics::of(ratios);
      d.oracle_forward_ratio_min = *std::min_element(ratios.begin(), ratios.end());
    }
    ++done;
  }
  report("done");
  audit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return audit;
}

nlohmann::json LipschitzAudit::to_json() const {
  nlohmann::json legend = {
      {"certified",
       "upper bound on the Lipschitz constant in x, from the network's layer norms (AutoLip over "
       "its graph at that t; layer norms by power iteration converged to layer_tolerance)"},
      {"empirical",
       "measured Jacobian norms of the network at the points (max and mean over points): each is "
       "a lower bound on the Lipschitz constant, up to the finite-difference error (~1e-4)"},
      {"exact",
       "Jacobian norms of the exact maps (eps*, the stepwise CME f_t, the oracle denoiser D*) of "
       "the data's GMM at the points, in double precision"},
      {"hyperparameter.cme_lower",
       "c_t = sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t): ||J_t(x)|| >= c_t for the exact "
       "stepwise CME at every x, valid for EVERY prior"},
      {"hyperparameter.cme_log_concave_upper",
       "1/sqrt(alpha_t): ||J_t(x)|| <= it for the exact stepwise CME, valid ONLY for log-concave "
       "priors"},
      {"denoiser.log_concave_bound",
       "s/sqrt(abar_start): Lip(D) for the exact CME steps, valid ONLY for log-concave priors"},
      {"denoiser.chain_log_concave_bound",
       "1/sqrt(abar_start): Lip(f_1 o ... o f_start) without the input scaling s, valid ONLY for "
       "log-concave priors"},
      {"denoiser.empirical",
       "the measured norm of the network's D at the observations: forward iteration (J v only; "
       "approaches the spectral radius) or Krylov norms (J v and J^T u); a lower bound"},
      {"denoiser.exact.measured_over_exact",
       "the same method applied to the oracle denoiser D*, divided by D*'s exact norm at the same "
       "observations: how much of the norm the method finds"},
      {"pairwise",
       "max ||f(x) - f(x')|| / ||x - x'||: empirical lower bounds on the Lipschitz "
       "constant (nearby: x' = x + 0.01 max(||x||,1) v along the measured top "
       "direction; random: all pairs of points)"}};
  nlohmann::json steps_json = nlohmann::json::array();
  for (const StepAudit& s : steps) {
    nlohmann::json step = {
        {"t", s.t},
        {"beta", s.beta},
        {"alpha", s.alpha},
        {"abar", s.abar},
        {"hyperparameter",
         {{"cme_lower", json_number(s.cme_lower)},
          {"cme_log_concave_upper", json_number(s.cme_log_concave_upper)}}},
        {"certified",
         {{"eps", json_number(s.certified_eps)}, {"mean", json_number(s.certified_mean)}}},
        {"empirical",
         {{"eps", json_statistics(s.empirical_eps)},
          {"mean", json_statistics(s.empirical_mean)},
          {"eps_converged", s.eps_converged},
          {"mean_converged", s.mean_converged},
          {"iterations", s.iterations},
          {"pairwise",
           {{"eps_nearby", json_number(s.eps_nearby)},
            {"eps_random", json_number(s.eps_random)},
            {"mean_nearby", json_number(s.mean_nearby)},
            {"mean_random", json_number(s.mean_random)}}}}},
        {"exact", nullptr}};
    if (s.exact)
      step["exact"] = {{"eps", json_statistics(s.exact_eps)},
                       {"cme", json_statistics(s.exact_cme)},
                       {"cme_population", json_statistics(s.exact_cme_population)},
                       {"exceed_fraction", json_number(s.exceed_fraction)},
                       {"exceed_max_ratio", json_number(s.exceed_max_ratio)},
                       {"lower_min_ratio", json_number(s.lower_min_ratio)}};
    steps_json.push_back(step);
  }
  nlohmann::json denoisers_json = nlohmann::json::array();
  for (const DenoiserAudit& d : denoisers) {
    nlohmann::json denoiser = {
        {"snr_db", d.snr_db},
        {"matched_step", d.matched_step},
        {"start_step", d.start_step},
        {"scale", d.scale},
        {"hyperparameter",
         {{"log_concave_bound", json_number(d.log_concave_bound)},
          {"chain_log_concave_bound", json_number(d.log_concave_bound / d.scale)}}},
        {"certified", {{"log10", json_number(d.log10_certified)}}},
        {"empirical",
         {{"norm", json_statistics(d.empirical)},
          {"method", settings.denoiser_method == DenoiserMethod::forward ? "forward" : "krylov"},
          {"iterations", d.iterations},
          {"pairwise_random", json_number(d.pairwise_random)},
          {"network_evaluations", d.network_evaluations}}},
        {"exact", nullptr}};
    if (d.exact)
      denoiser["exact"] = {{"norm", json_statistics(d.exact_norm)},
                           {"exceed_fraction", json_number(d.exceed_fraction)},
                           {"measured_over_exact",
                            {{"min", json_number(d.oracle_forward_ratio_min)},
                             {"mean", json_number(d.oracle_forward_ratio.mean)},
                             {"count", d.oracle_forward_ratio.count}}}};
    denoisers_json.push_back(denoiser);
  }
  nlohmann::json certified_json = {
      {"available", certified.available},
      {"note", certified.note},
      {"layers", certified.layers},
      {"layers_converged", certified.layers_converged},
      {"worst_remaining_error", json_number(certified.worst_remaining_error)}};
  if (certified.available) {
    // Every t, for plots: index 0 of the vectors is t = 1.
    certified_json["eps_by_t"] =
        std::vector<double>(certified.eps.begin() + 1, certified.eps.end());
    certified_json["mean_by_t"] =
        std::vector<double>(certified.mean.begin() + 1, certified.mean.end());
  }
  return {{"legend", legend},
          {"network", network},
          {"target", target},
          {"schedule", schedule},
          {"sample_shape", sample_shape.vec()},
          {"points", points},
          {"settings",
           {{"steps", settings.steps},
            {"snr_db", settings.snr_db},
            {"samples", settings.samples},
            {"denoiser_samples", settings.denoiser_samples},
            {"oracle_samples", settings.oracle_samples},
            {"tolerance", settings.norms.tolerance},
            {"max_iterations", settings.norms.max_iterations},
            {"denoiser_iterations", settings.denoiser_iterations},
            {"authors_offset", settings.authors_offset},
            {"layer_tolerance", settings.layer_tolerance},
            {"seed", settings.seed}}},
          {"certified", certified_json},
          {"steps", steps_json},
          {"denoisers", denoisers_json},
          {"seconds", seconds}};
}

std::string LipschitzAudit::markdown() const {
  std::ostringstream out;
  out << "# Lipschitz audit\n\n"
      << "Network: `" << network.dump() << "` predicting " << target << "; schedule `"
      << schedule.dump() << "`; samples of shape " << sample_shape.str() << ".\n"
      << "Points: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with x_0 from " << points << "; "
      << settings.samples << " points per step, " << settings.denoiser_samples
      << " observations for the network's denoiser.\n"
      << "Certified bounds: " << certified.note << "; " << certified.layers_converged << " of "
      << certified.layers << " layer norms converged (worst extrapolated relative error "
      << format_number(certified.worst_remaining_error, 2) << ").\n"
      << "Run time " << format_number(seconds, 3) << " s.\n\n"
      << "Kinds of numbers:\n"
      << "- **certified**: an upper bound on the Lipschitz constant in x (AutoLip over the "
         "network's graph from its layer norms; mu by the network-form relation; D by the "
         "product over the steps).\n"
      << "- **empirical**: the largest Jacobian norm measured at the points (max / mean over "
         "points), a lower bound on the Lipschitz constant; pairs: max ||f(x) - f(x')|| / "
         "||x - x'|| (nearby along the measured top direction / all pairs of points).\n"
      << "- **exact**: Jacobian norms of the exact maps of the data's GMM at the points (eps*, "
         "the stepwise CME f_t, the oracle denoiser D*).\n"
      << "- **valid under an assumption**: c_t is a lower bound on ||J_t|| of the exact "
         "stepwise CME for every prior; 1/sqrt(alpha_t), and s/sqrt(abar_start) for D, are "
         "upper bounds only for log-concave priors.\n\n"
      << "## The network at each step: eps_theta(., t) and mu_theta(., t)\n\n"
      << render(network_table(*this), true)
      << "\n## The exact stepwise CME against the hyperparameter bounds\n\n"
      << "Population: " << settings.oracle_samples
      << " points per step; '> 1/sqrt(alpha_t)' is the share of them where the log-concave "
         "bound fails.\n\n"
      << render(cme_table(*this), true) << "\n## The mean-forwarding denoiser D(y)\n\n"
      << "Empirical: "
      << (settings.denoiser_method == DenoiserMethod::forward
              ? "forward iteration (products J v only"
              : "Krylov norms (products J v and J^T u, the latter by the tape step by step")
      << "; " << settings.denoiser_iterations
      << " of them, J v by per-step central differences through the reverse loop) on "
      << settings.denoiser_samples
      << " observations; 'D* measured/exact' applies the same method to the oracle denoiser at "
         "the same observations and divides by its exact norm there (1: the method finds the "
         "norm). Certified: s prod_t Lip(mu_theta(., t)).\n\n"
      << render(denoiser_table(*this), true);
  return out.str();
}

std::string LipschitzAudit::text_table() const {
  return "Network (eps_theta, mu_theta) per step, max / mean over points:\n" +
         render(network_table(*this), false) + "\nExact stepwise CME vs hyperparameter bounds:\n" +
         render(cme_table(*this), false) + "\nMean-forwarding denoiser:\n" +
         render(denoiser_table(*this), false);
}

}  // namespace dpm::diffusion
