#include "diffusion/denoise_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "autograd/rng.hpp"
#include "datasets/dense.hpp"
#include "diffusion/error_stats.hpp"

namespace dpm::diffusion {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The clean test rows in double with their powers ||x_i||^2, and the observations of them: the
// i-th SNR of any experiment's list takes its noise from stream 2 i of the seed and gives the
// estimators stream 2 i + 1 (the same for every estimator, so their order does not matter).
struct TestRows {
  std::vector<double> x, power;
  int64_t n = 0, dim = 0;

  TestRows(const Tensor& x_test, int64_t dim_, const char* caller) : dim(dim_) {
    x = datasets::to_double_rows(x_test, dim, caller, "x_test");
    n = static_cast<int64_t>(x.size()) / dim;
    if (n < 2) throw std::invalid_argument(std::string(caller) + ": x_test needs at least 2 rows");
    power.assign(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < dim; ++j) power[i] += x[i * dim + j] * x[i * dim + j];
  }

  // Shaped [n, ...sample_shape] for the predictor (an empty sample_shape: [n, N]).
  DoubleBatch observe(double sigma2, uint64_t seed, size_t snr_index,
                      const Shape& sample_shape) const {
    Rng noise = Rng(seed).split(2 * snr_index);
    DoubleBatch y = DoubleBatch::from_rows(x, n, dim);
    for (double& v : y.values) v += std::sqrt(sigma2) * noise.normal();
    if (sample_shape.ndim() > 0) {
      if (sample_shape.numel() != dim)
        throw std::invalid_argument("denoise bench: sample_shape " + sample_shape.str() +
                                    " does not hold the prior's " + std::to_string(dim) +
                                    " values per row");
      std::vector<int64_t> dims = sample_shape.vec();
      dims.insert(dims.begin(), n);
      y.shape = Shape(dims);
    }
    return y;
  }

  // NMSE of x_hat with its standard error, and the gap to the reference errors `cme` with its
  // own (when given).
  struct Score {
    double nmse = 0, nmse_se = 0, gap = 0, gap_se = 0;
  };
  Score score(const std::vector<double>& x_hat, const std::vector<double>* cme = nullptr) const {
    Score out;
    const std::vector<double> e = squared_errors(x, x_hat, dim);
    std::tie(out.nmse, out.nmse_se) = ratio_with_se(e, power);
    if (cme) {
      std::vector<double> gap(e.size());
      for (size_t i = 0; i < e.size(); ++i) gap[i] = e[i] - (*cme)[i];
      std::tie(out.gap, out.gap_se) = ratio_with_se(gap, power);
    }
    return out;
  }
};

// Rows [begin, begin + count) of a batch.
DoubleBatch rows_of(const DoubleBatch& batch, int64_t begin, int64_t count) {
  const int64_t row = batch.row_size();
  DoubleBatch part{
      batch.shape,
      {batch.values.begin() + begin * row, batch.values.begin() + (begin + count) * row}};
  part.shape[0] = count;
  return part;
}

Rng estimator_stream(uint64_t seed, size_t snr_index) {
  return Rng(seed).split(2 * snr_index + 1);
}

void report(const DenoiseExperiment& experiment) {
  if (experiment.on_progress) experiment.on_progress();
}

}  // namespace

std::vector<DenoiseBenchEntry> run_denoise_bench(const datasets::Gmm& prior, const Tensor& x_test,
                                                 const Schedule& schedule,
                                                 NoisePredictor& predictor,
                                                 const DenoiseBenchOptions& options) {
  const TestRows rows(x_test, prior.dim, "run_denoise_bench");
  dist::Communicator& ranks =
      options.communicator ? *options.communicator : dist::Communicator::self();
  const dist::Shard shard = dist::shard_of(rows.n, ranks.rank(), ranks.size());
  // The estimates of every row from this rank's shard of them (in row order).
  auto sharded = [&](const DoubleBatch& all, auto&& estimate) {
    if (!ranks.distributed()) return estimate(all, BatchPart{});
    return ranks.allgather(shard.size() > 0 ? estimate(rows_of(all, shard.begin, shard.size()),
                                                       BatchPart{shard.begin, rows.n})
                                            : std::vector<double>{});
  };
  std::vector<DenoiseBenchEntry> entries;
  for (size_t s = 0; s < options.snr_db.size(); ++s) {
    const double snr_db = options.snr_db[s], sigma2 = datasets::snr_db_to_sigma2(snr_db);
    const DoubleBatch y = rows.observe(sigma2, options.seed, s, options.sample_shape);

    std::vector<double> cme_errors;
    auto record = [&](DenoiseBenchEntry entry, const std::vector<double>& x_hat,
                      std::chrono::steady_clock::time_point start) {
      if (cme_errors.empty()) cme_errors = squared_errors(rows.x, x_hat, rows.dim);  // CME first
      const TestRows::Score score = rows.score(x_hat, &cme_errors);
      entry.snr_db = snr_db;
      entry.nmse = score.nmse;
      entry.nmse_se = score.nmse_se;
      entry.gap = score.gap;
      entry.gap_se = score.gap_se;
      entry.seconds = seconds_since(start);
      if (entry.estimator == "cme" && !options.references) return;
      const int64_t kept = std::clamp(options.example_rows, int64_t{0}, rows.n) * rows.dim;
      entry.examples.assign(x_hat.begin(), x_hat.begin() + kept);
      if (options.on_entry) options.on_entry(entry);
      entries.push_back(std::move(entry));
    };

    auto start = std::chrono::steady_clock::now();
    const auto factors = prior.factorize(sigma2);
    record({"", "cme"},
           sharded(y, [&](const DoubleBatch& part,
                          BatchPart) { return prior.cme(part.values, factors); }),
           start);
    if (options.references) {
      start = std::chrono::steady_clock::now();
      record({"", "lmmse"},
             sharded(y, [&](const DoubleBatch& part,
                            BatchPart) { return prior.lmmse(part.values, sigma2); }),
             start);
      record({"", "ls"}, y.values, std::chrono::steady_clock::now());
    }
    for (const Estimator& estimator : options.estimators) {
      start = std::chrono::steady_clock::now();
      DenoiseBenchEntry entry{options.predictor, estimator.name(), schedule.T()};
      // The estimator's noise is the whole batch's, so each row gets the same on any rank count.
      auto run = [&](const DoubleBatch& part, const BatchPart& rows_held) {
        Rng estimator_rng = estimator_stream(options.seed, s);
        Denoised d = denoise(estimator, part, 1.0 / sigma2, predictor, schedule, estimator_rng, {},
                             rows_held);
        entry.matched_step = d.matched_step;
        entry.evaluations = d.evaluations;
        return std::move(d.x_hat.values);
      };
      record(std::move(entry), sharded(y, run), start);
    }
  }
  return entries;
}

std::vector<StepErrorEntry> run_step_errors(const DenoiseExperiment& experiment,
                                            const std::vector<double>& snr_db) {
  const TestRows rows(experiment.x_test, experiment.prior.dim, "run_step_errors");
  const Schedule& schedule = experiment.schedule;
  std::vector<StepErrorEntry> entries;
  for (size_t s = 0; s < snr_db.size(); ++s) {
    const double sigma2 = datasets::snr_db_to_sigma2(snr_db[s]);
    const DoubleBatch y = rows.observe(sigma2, experiment.seed, s, experiment.sample_shape);
    const size_t first = entries.size();
    auto record = [&](int64_t remaining, const DoubleBatch& state) {
      StepErrorEntry entry{experiment.predictor_label, schedule.T(), snr_db[s]};
      entry.remaining = remaining;
      entry.nmse = rows.score(state.values).nmse;
      std::vector<double> rescaled = state.values;
      for (double& v : rescaled) v /= std::sqrt(schedule.abar(remaining));
      entry.nmse_rescaled = rows.score(rescaled).nmse;
      entries.push_back(entry);
    };
    // The start state is y scaled as denoise() scales it, sqrt(snr / (1 + snr)) y; it is
    // recorded when the first step reports (or alone when there is no step to take).
    DoubleBatch start = y;
    const double snr = 1.0 / sigma2;
    for (double& v : start.values) v *= std::sqrt(snr / (1.0 + snr));
    bool started = false;
    Rng rng = estimator_stream(experiment.seed, s);
    const Denoised d = denoise(Estimator{}, y, snr, experiment.predictor, schedule, rng,
                               [&](int64_t t, const DoubleBatch& x) {
                                 if (!started) record(t, start);
                                 started = true;
                                 record(t - 1, x);
                               });
    if (!started) record(0, start);
    for (size_t i = first; i < entries.size(); ++i) entries[i].start_step = d.start_step;
    report(experiment);
  }
  return entries;
}
std::vector<MonteCarloEntry> run_posterior_mean_convergence(
    const DenoiseExperiment& experiment, const std::vector<double>& snr_db,
    const std::vector<int64_t>& sample_counts) {
  const TestRows rows(experiment.x_test, experiment.prior.dim, "run_posterior_mean_convergence");
  if (sample_counts.empty() || sample_counts.front() < 1 ||
      !std::is_sorted(sample_counts.begin(), sample_counts.end()) ||
      std::adjacent_find(sample_counts.begin(), sample_counts.end()) != sample_counts.end())
    throw std::invalid_argument(
        "run_posterior_mean_convergence: sample_counts must be increasing counts >= 1");
  Estimator estimator;
  estimator.kind = EstimatorKind::posterior_mean;
  estimator.samples = sample_counts.back();
  std::vector<MonteCarloEntry> entries;
  for (size_t s = 0; s < snr_db.size(); ++s) {
    const double sigma2 = datasets::snr_db_to_sigma2(snr_db[s]);
    const DoubleBatch y = rows.observe(sigma2, experiment.seed, s, experiment.sample_shape);
    const std::vector<double> cme_errors = squared_errors(
        rows.x, experiment.prior.cme(y.values, experiment.prior.factorize(sigma2)), rows.dim);
    std::vector<double> sum(rows.x.size(), 0.0);
    int64_t runs = 0;
    const int64_t evaluations_before = experiment.predictor.evaluations();
    const auto start = std::chrono::steady_clock::now();
    // Adds one run's x_0 to the sum, and scores the average when M runs are wanted.
    auto add_run = [&](const std::vector<double>& x0) {
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += x0[i];
      ++runs;
      if (!std::binary_search(sample_counts.begin(), sample_counts.end(), runs)) return;
      std::vector<double> average = sum;
      for (double& v : average) v /= static_cast<double>(runs);
      const TestRows::Score score = rows.score(average, &cme_errors);
      MonteCarloEntry entry{experiment.predictor_label, experiment.schedule.T(), snr_db[s], runs};
      entry.nmse = score.nmse;
      entry.nmse_se = score.nmse_se;
      entry.gap = score.gap;
      entry.gap_se = score.gap_se;
      entry.evaluations = experiment.predictor.evaluations() - evaluations_before;
      entry.seconds = seconds_since(start);
      entries.push_back(entry);
    };
    Rng rng = estimator_stream(experiment.seed, s);
    const Denoised d = denoise(estimator, y, 1.0 / sigma2, experiment.predictor,
                               experiment.schedule, rng, [&](int64_t t, const DoubleBatch& x) {
                                 if (t == 1) add_run(x.values);  // x is this run's x_0
                               });
    // Start step 0 (the authors' offset at t_hat = 1): no steps, every run is the start state.
    while (runs < estimator.samples) add_run(d.x_hat.values);
    report(experiment);
  }
  return entries;
}

std::vector<MismatchEntry> run_snr_mismatch(const DenoiseExperiment& experiment,
                                            const std::vector<Estimator>& estimators,
                                            const std::vector<double>& snr_db,
                                            const std::vector<double>& offsets_db, bool with_cme) {
  const TestRows rows(experiment.x_test, experiment.prior.dim, "run_snr_mismatch");
  std::vector<MismatchEntry> entries;
  for (size_t s = 0; s < snr_db.size(); ++s) {
    const DoubleBatch y = rows.observe(datasets::snr_db_to_sigma2(snr_db[s]), experiment.seed, s,
                                       experiment.sample_shape);
    for (double offset_db : offsets_db) {
      const double assumed_sigma2 = datasets::snr_db_to_sigma2(snr_db[s] + offset_db);
      auto record = [&](MismatchEntry entry, const std::vector<double>& x_hat) {
        const TestRows::Score score = rows.score(x_hat);
        entry.snr_db = snr_db[s];
        entry.offset_db = offset_db;
        entry.nmse = score.nmse;
        entry.nmse_se = score.nmse_se;
        entries.push_back(entry);
      };
      if (with_cme)
        record({"", "cme"},
               experiment.prior.cme(y.values, experiment.prior.factorize(assumed_sigma2)));
      for (const Estimator& estimator : estimators) {
        Rng rng = estimator_stream(experiment.seed, s);
        const Denoised d = denoise(estimator, y, 1.0 / assumed_sigma2, experiment.predictor,
                                   experiment.schedule, rng);
        MismatchEntry entry{experiment.predictor_label, estimator.name(), experiment.schedule.T()};
        entry.matched_step = d.matched_step;
        record(entry, d.x_hat.values);
      }
      report(experiment);
    }
  }
  return entries;
}

}  // namespace dpm::diffusion
