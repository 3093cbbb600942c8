#include "experiments/denoise_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <set>

#include "autograd/rng.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/prior_inputs.hpp"
#include "experiments/report/format.hpp"

namespace dpm::experiments {
namespace {

using diffusion::DenoiseBenchEntry;
using diffusion::Estimator;
using diffusion::EstimatorKind;
using Kind = DenoiseBenchUnitKind;

Estimator estimator(EstimatorKind kind, int64_t samples = 1) {
  Estimator e;
  e.kind = kind;
  e.samples = samples;
  return e;
}

// The NMSE table's estimators: mean forwarding (re-sampling off), one-step Tweedie and, when
// `detailed`, one ancestral run (re-sampling on, a generator), the Monte-Carlo posterior mean
// over M runs and DDIM.
std::vector<Estimator> table_estimators(bool detailed, int64_t mc_samples) {
  std::vector<Estimator> estimators = {estimator(EstimatorKind::mean_forwarding),
                                       estimator(EstimatorKind::tweedie)};
  if (detailed) {
    estimators.push_back(estimator(EstimatorKind::posterior_mean, 1));
    if (mc_samples > 1) estimators.push_back(estimator(EstimatorKind::posterior_mean, mc_samples));
    estimators.push_back(estimator(EstimatorKind::ddim));
  }
  return estimators;
}

// One predictor with its schedule, at the T of the detailed experiments.
struct Contender {
  std::string label;  // "oracle" or "network"
  diffusion::Schedule schedule;
  std::shared_ptr<diffusion::NoisePredictor> predictor;
  Shape sample_shape;
};

const DenoiseBenchEntry* find_entry(const std::vector<DenoiseBenchEntry>& entries,
                                    const std::string& predictor, const std::string& estimator,
                                    int64_t T, double snr_db) {
  for (const DenoiseBenchEntry& e : entries)
    if (e.predictor == predictor && e.estimator == estimator && e.T == T && e.snr_db == snr_db)
      return &e;
  return nullptr;
}

std::vector<ResamplingRow> resampling_rows(const std::vector<DenoiseBenchEntry>& entries,
                                           const std::vector<Contender>& contenders,
                                           const std::vector<double>& snr) {
  std::vector<ResamplingRow> rows;
  for (const Contender& c : contenders)
    for (double s : snr) {
      const DenoiseBenchEntry* off =
          find_entry(entries, c.label, "mean-forwarding", c.schedule.T(), s);
      const DenoiseBenchEntry* on =
          find_entry(entries, c.label, "posterior-mean-M1", c.schedule.T(), s);
      const DenoiseBenchEntry* cme = find_entry(entries, "", "cme", 0, s);
      if (off && on && cme)
        rows.push_back({c.label, c.schedule.T(), s, off->nmse, on->nmse, cme->nmse});
    }
  return rows;
}

// A network trained on a step range (objective first_step..last_step) has never seen the steps
// above it; a denoiser that starts there gets an untrained answer, so say which SNRs do.
void warn_outside_trained_steps(const diffusion::DpmCheckpoint& network,
                                const DenoiseBenchPlan& plan, report::Progress& progress) {
  const int64_t last = network.objective.last_step_for(network.schedule.T());
  if (last == network.schedule.T()) return;
  std::set<double> outside;
  auto check = [&](DenoiseBenchPart part, const std::vector<double>& snrs) {
    if (!plan.runs(part)) return;
    for (double db : snrs)
      if (network.schedule.nearest_step(std::pow(10.0, db / 10.0)) > last) outside.insert(db);
  };
  check(DenoiseBenchPart::nmse, plan.snr);
  check(DenoiseBenchPart::resampling, plan.mc_snr);
  check(DenoiseBenchPart::steps, plan.step_snr);
  check(DenoiseBenchPart::mismatch, plan.mismatch_snr);
  if (outside.empty()) return;
  std::string list;
  for (double db : outside) list += (list.empty() ? "" : ", ") + report::csv_number(db);
  progress.warn("the network was trained on steps " + std::to_string(network.objective.first_step) +
                ".." + std::to_string(last) + " of " + std::to_string(network.schedule.T()) +
                ", but at SNR " + list + " dB the denoiser starts above step " +
                std::to_string(last) + ": the network's figures there are outside its training");
}

// SNR = 1 / sigma^2 holds on unit-power data: the GMM must describe the normalised data (the
// gmm.safetensors of `gmm make` or `gmm fit --sample`, which the network was trained on).
void warn_unnormalised(double power, report::Progress& progress) {
  if (power >= 0.8 && power <= 1.25) return;
  progress.warn("SNR = 1 / sigma^2 assumes unit average power per entry; this GMM has " +
                report::number(power, "%g") +
                " (not normalised? use the gmm.safetensors of a `gmm make` or `gmm fit "
                "--sample` data set)");
}

// A NaN or infinite NMSE shows as "n/a" in the tables: say which, so that a diverged reverse run
// is not mistaken for a missing row.
void warn_non_finite(const std::vector<DenoiseBenchEntry>& entries, report::Progress& progress) {
  for (const DenoiseBenchEntry& e : entries)
    if (!std::isfinite(e.nmse))
      progress.warn(e.estimator + (e.predictor.empty() ? "" : " with the " + e.predictor) +
                    " at " + report::number(e.snr_db, "%g") +
                    " dB: the NMSE is not finite (some estimates are NaN or infinite: the reverse "
                    "run diverged for at least one sample)");
}

// The state the units of one run share: the test rows and their noise seed, and the
// predictors, each built once.
struct Bench {
  const DenoiseBenchInputs& in;
  report::Progress& progress;
  const diffusion::ScheduleKind kind;
  std::vector<Contender> contenders;  // the oracle at the detailed T, then the network if any
  Tensor x_test;
  uint64_t noise_seed = 0;
  std::vector<int64_t> mc_M;                         // ascending
  std::vector<DenoiseBenchEntry> resampling_source;  // the resampling tables' entries
  int64_t grid_rows = 0;  // the test rows each NMSE table entry keeps for the image grid

  Bench(const DenoiseBenchInputs& inputs, report::Progress& progress_)
      : in(inputs), progress(progress_), kind(diffusion::parse_schedule_kind(in.plan.schedule)) {
    const diffusion::Schedule detail = diffusion::Schedule::make(kind, in.plan.detail_T);
    if (in.plan.runs(DenoisePredictor::oracle))
      contenders.push_back(
          {"oracle", detail, std::make_shared<diffusion::GmmOracle>(in.gmm, detail), Shape{}});
    if (in.network && in.plan.runs(DenoisePredictor::network))
      contenders.push_back({"network", in.network->schedule, diffusion::make_predictor(*in.network),
                            in.network_shape});
    Rng draw_rng = Rng(in.plan.seed).split(0);
    x_test = in.gmm.sample(in.plan.samples, draw_rng);
    noise_seed = Rng(in.plan.seed).split(1).next_u64();
    mc_M = in.plan.mc_M;
    std::sort(mc_M.begin(), mc_M.end());
    const datasets::TrainingData& data = in.training_data;
    if (in.plan.runs(DenoiseBenchPart::nmse) && data.sample_shape && data.normalization &&
        datasets::is_image_shape(*data.sample_shape))
      grid_rows = in.plan.grid_images;
  }

  // A run_denoise_bench table: the oracle's NMSE table at the unit's T with an oracle of its
  // own, every other table with the contender's predictor at its schedule.
  void table(const DenoiseBenchUnit& unit, const Contender& c,
             std::vector<DenoiseBenchEntry>& into) {
    const bool own_schedule =
        unit.kind != Kind::nmse_table || c.label == "network" || unit.T == c.schedule.T();
    const diffusion::Schedule schedule =
        own_schedule ? c.schedule : diffusion::Schedule::make(kind, unit.T);
    std::optional<diffusion::GmmOracle> oracle;
    if (!own_schedule) oracle.emplace(in.gmm, schedule);
    diffusion::DenoiseBenchOptions options;
    options.snr_db = in.plan.snr;
    options.estimators = unit.estimators;
    options.references = unit.references;
    options.seed = noise_seed;
    options.predictor = c.label;
    options.sample_shape = c.sample_shape;
    options.example_rows = grid_rows;
    options.communicator = &dist::Communicator::world();  // under mpirun: the rows shared out
    options.on_entry = [&](const DenoiseBenchEntry& e) {
      const auto at = std::find(options.snr_db.begin(), options.snr_db.end(), e.snr_db);
      progress.status(unit.stage() + ", SNR " + std::to_string(at - options.snr_db.begin() + 1) +
                      "/" + std::to_string(options.snr_db.size()) + " (" +
                      report::number(e.snr_db, "%g") + " dB): " + e.estimator + " done");
    };
    const std::vector<DenoiseBenchEntry> entries = diffusion::run_denoise_bench(
        in.gmm, x_test, schedule, own_schedule ? *c.predictor : *oracle, options);
    into.insert(into.end(), entries.begin(), entries.end());
  }

  void execute(const DenoiseBenchUnit& unit, DenoiseBenchResults& results) {
    const Contender& c = *std::find_if(contenders.begin(), contenders.end(),
                                       [&](const Contender& k) { return k.label == unit.predictor; });
    const diffusion::DenoiseExperiment experiment{
        in.gmm,  x_test,         c.schedule, *c.predictor,
        c.label, c.sample_shape, noise_seed, [&] { progress.status(unit.stage()); }};
    const DenoiseBenchPlan& plan = in.plan;
    auto append = [](auto& into, const auto& entries) {
      into.insert(into.end(), entries.begin(), entries.end());
    };
    switch (unit.kind) {
      case Kind::nmse_table:
        return table(unit, c, results.nmse);
      case Kind::resampling_table:
        return table(unit, c, resampling_source);
      case Kind::posterior_mean_vs_M:
        return append(results.mc,
                      diffusion::run_posterior_mean_convergence(experiment, plan.mc_snr, mc_M));
      case Kind::step_errors:
        return append(results.steps, diffusion::run_step_errors(experiment, plan.step_snr));
      case Kind::snr_mismatch:
        return append(results.mismatch,
                      diffusion::run_snr_mismatch(experiment, unit.estimators, plan.mismatch_snr,
                                                  plan.mismatch, unit.references));
    }
  }
};

}  // namespace

std::string DenoiseBenchUnit::stage() const {
  static const char* const what[] = {"NMSE against the SNR", "NMSE against the SNR",
                                     "posterior mean against M", "per-step error", "SNR mismatch"};
  return predictor + " T=" + std::to_string(T) + ": " + what[static_cast<int>(kind)];
}

void DenoiseBenchPlan::validate() const {
  if (experiments.empty()) throw PlanError("experiments", "is empty");
  require_range("samples", samples, 2, 1'000'000);
  require_list("snr", snr);
  require_list("T", oracle_T, 1, 100000);
  if (!schedule.empty()) {
    try {
      diffusion::parse_schedule_kind(schedule);
    } catch (const std::invalid_argument& e) {
      throw PlanError("schedule", e.what());
    }
  }
  if (detail_T != 0) require_range("detail_T", detail_T, 1, 100000);
  require_range("mc_samples", mc_samples, 1, 10000);
  require_list("step_snr", step_snr);
  require_list("mc_M", mc_M, 1, 100000);
  require_list("mc_snr", mc_snr);
  require_list("mismatch", mismatch);
  require_list("mismatch_snr", mismatch_snr);
  require_range("grid_images", grid_images, 0, std::min<int64_t>(samples, 64));
  if (predictors.empty()) throw PlanError("predictors", "is empty");
  if (!runs(DenoisePredictor::oracle) && checkpoint.empty())
    throw PlanError("predictors", "without oracle needs a network (--checkpoint)");
}

DenoiseBenchPlan DenoiseBenchPlan::from_json(const nlohmann::json& json) {
  DenoiseBenchPlan plan = plan_from_json<DenoiseBenchPlan>(json);
  plan.validate();
  return plan;
}

bool DenoiseBenchPlan::runs(DenoiseBenchPart part) const {
  return std::find(experiments.begin(), experiments.end(), part) != experiments.end();
}

bool DenoiseBenchPlan::runs(DenoisePredictor predictor) const {
  return std::find(predictors.begin(), predictors.end(), predictor) != predictors.end();
}

int64_t DenoiseBenchPlan::detailed_T() const {
  if (detail_T != 0) return detail_T;
  if (!checkpoint.empty())
    throw PlanError("detail_T", "is the checkpoint's T, unknown before it is read (read_inputs)");
  return kOracleDetailT;
}

std::vector<int64_t> DenoiseBenchPlan::table_T() const {
  std::vector<int64_t> T = oracle_T;
  if (std::find(T.begin(), T.end(), detailed_T()) == T.end()) T.push_back(detailed_T());
  return T;
}

std::vector<DenoiseBenchUnit> DenoiseBenchPlan::units() const {
  const int64_t detail = detailed_T();
  const bool all = estimators == DenoiseEstimators::all, oracle = runs(DenoisePredictor::oracle),
             network = !checkpoint.empty() && runs(DenoisePredictor::network);
  std::vector<std::string> predictors;
  if (oracle) predictors.push_back("oracle");
  if (network) predictors.push_back("network");
  std::vector<DenoiseBenchUnit> units;
  if (runs(DenoiseBenchPart::nmse)) {
    bool references = true;  // once, with the first table
    if (oracle)
      for (int64_t T : table_T()) {
        units.push_back({Kind::nmse_table, "oracle", T,
                         table_estimators(all && T == detail, mc_samples), references});
        references = false;
      }
    if (network)
      units.push_back(
          {Kind::nmse_table, "network", detail, table_estimators(all, mc_samples), references});
  }
  // The resampling part reads the NMSE table's mean forwarding and ancestral run when the table
  // has them, else runs those two itself.
  if (runs(DenoiseBenchPart::resampling) && !(runs(DenoiseBenchPart::nmse) && all))
    for (const std::string& p : predictors)
      units.push_back(
          {Kind::resampling_table,
           p,
           detail,
           {estimator(EstimatorKind::mean_forwarding), estimator(EstimatorKind::posterior_mean, 1)},
           p == predictors.front()});
  for (const std::string& p : predictors) {
    if (runs(DenoiseBenchPart::resampling))
      units.push_back({Kind::posterior_mean_vs_M, p, detail, {}, false});
    if (runs(DenoiseBenchPart::steps)) units.push_back({Kind::step_errors, p, detail, {}, false});
    if (runs(DenoiseBenchPart::mismatch))
      units.push_back(
          {Kind::snr_mismatch,
           p,
           detail,
           {estimator(EstimatorKind::mean_forwarding), estimator(EstimatorKind::tweedie)},
           p == predictors.front()});
  }
  return units;
}

DenoiseBenchInputs read_inputs(const DenoiseBenchPlan& given) {
  PriorInputs prior = read_prior_inputs(given.gmm, given.checkpoint);
  DenoiseBenchInputs in{given, std::move(prior.gmm), std::move(prior.network),
                        prior.network_shape, std::move(prior.training_data)};
  DenoiseBenchPlan& plan = in.plan;
  plan.gmm = prior.gmm_path;
  // The network, if any, fixes the schedule of the detailed experiments: it runs at its own T.
  if (in.network) {
    const diffusion::Schedule& own = in.network->schedule;
    if (plan.detail_T != 0 && plan.detail_T != own.T())
      throw PlanError("checkpoint", "the network was trained with T = " + std::to_string(own.T()) +
                                        " and runs only at its own T, but --detail-T is " +
                                        std::to_string(plan.detail_T) +
                                        " (drop --detail-T or give " + std::to_string(own.T()) +
                                        "; --T sets the oracle's other T)");
    const std::string own_kind = diffusion::schedule_kind_name(own.kind());
    if (!plan.schedule.empty() && plan.schedule != own_kind)
      throw PlanError("checkpoint", "the network was trained with the " + own_kind +
                                        " schedule, but --schedule is " + plan.schedule +
                                        " (drop --schedule)");
    plan.detail_T = own.T();
    plan.schedule = own_kind;
  }
  if (plan.detail_T == 0) plan.detail_T = kOracleDetailT;
  if (plan.schedule.empty()) plan.schedule = "paper_linear";
  return in;
}

double power_per_entry(const datasets::Gmm& gmm) {
  const std::vector<double> mean = gmm.mixture_mean(), covariance = gmm.mixture_covariance();
  double power = 0.0;
  for (int64_t i = 0; i < gmm.dim; ++i) power += covariance[i * gmm.dim + i] + mean[i] * mean[i];
  return power / static_cast<double>(gmm.dim);
}

DenoiseBenchResults run(const DenoiseBenchPlan& given, report::Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const DenoiseBenchInputs in = read_inputs(given);
  const DenoiseBenchPlan& plan = in.plan;
  DenoiseBenchResults results;
  results.plan = given;
  results.resolved = plan;
  results.dim = in.gmm.dim;
  results.components = in.gmm.components;
  results.power_per_entry = power_per_entry(in.gmm);
  warn_unnormalised(results.power_per_entry, progress);
  if (in.network && plan.runs(DenoisePredictor::network)) {
    results.network_T = in.network->schedule.T();
    warn_outside_trained_steps(*in.network, plan, progress);
  }

  Bench bench(in, progress);
  if (bench.grid_rows > 0) {
    results.image_shape = in.training_data.sample_shape->vec();
    results.normalization = *in.training_data.normalization;
    const std::vector<float> truth = bench.x_test.to_vector();
    results.grid_truth.assign(truth.begin(), truth.begin() + bench.grid_rows * in.gmm.dim);
  }
  const std::vector<DenoiseBenchUnit> units = plan.units();
  progress.begin(static_cast<int64_t>(units.size()));
  for (const DenoiseBenchUnit& unit : units) {
    bench.execute(unit, results);
    progress.advance(unit.stage());
  }
  progress.finish();
  warn_non_finite(results.nmse, progress);
  if (plan.runs(DenoiseBenchPart::resampling))
    results.resampling =
        resampling_rows(bench.resampling_source.empty() ? results.nmse : bench.resampling_source,
                        bench.contenders, plan.snr);
  results.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return results;
}

}  // namespace dpm::experiments
