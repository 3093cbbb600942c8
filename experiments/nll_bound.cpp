#include "experiments/nll_bound.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "datasets/data_files.hpp"
#include "diffusion/oracle.hpp"

namespace dpm::experiments {
namespace {

namespace fs = std::filesystem;

const Tensor& split_of(const datasets::GmmDataset& data, DataSplit split) {
  return split == DataSplit::train ? data.train : split == DataSplit::val ? data.val : data.test;
}

}  // namespace

std::string NllBoundUnit::stage() const {
  return predictor + ", sigma_t^2 = " + diffusion::reverse_variance_name(variance);
}

void NllBoundPlan::validate() const {
  if (checkpoint.empty()) throw PlanError("checkpoint", "is required");
  require_range("samples", samples, 1, 100'000'000);
}

NllBoundPlan NllBoundPlan::from_json(const nlohmann::json& json) {
  NllBoundPlan plan = plan_from_json<NllBoundPlan>(json);
  plan.validate();
  return plan;
}

std::vector<NllBoundUnit> NllBoundPlan::units() const {
  std::vector<NllBoundUnit> units;
  for (diffusion::ReverseVariance variance :
       {diffusion::ReverseVariance::beta, diffusion::ReverseVariance::beta_tilde})
    for (const char* predictor : {"network", "oracle"}) units.push_back({predictor, variance});
  return units;
}

NllBoundInputs read_inputs(const NllBoundPlan& given) {
  NllBoundPlan plan = given;
  diffusion::DpmCheckpoint network = diffusion::load_dpm_checkpoint(plan.checkpoint);
  const datasets::TrainingData trained_on =
      datasets::training_data(network.metadata, plan.checkpoint);
  if (plan.data.empty()) plan.data = trained_on.source;
  if (plan.data.empty())
    throw PlanError("data", "is required: the checkpoint names no data set directory");
  const fs::path gmm_path = fs::path(plan.data) / datasets::kGmmFileName;
  if (!fs::exists(gmm_path))
    throw PlanError("data", "'" + plan.data + "' has no " + datasets::kGmmFileName +
                                ": give a data set directory of `dpmlab gmm make` or `gmm fit "
                                "--sample`");
  const datasets::GmmDataset data = datasets::read_gmm_dataset(plan.data);
  datasets::Gmm gmm = datasets::load_gmm(gmm_path.string());
  const Tensor& split = split_of(data, plan.split);
  Tensor rows = datasets::flatten_rows(split)
                    .narrow(0, 0, std::min(plan.samples, split.shape()[0]))
                    .contiguous();
  Shape network_shape;
  try {
    network_shape = trained_on.model_shape
                        ? *trained_on.model_shape
                        : datasets::model_input_shape(network.model->config(), Shape{gmm.dim});
  } catch (const std::invalid_argument& e) {
    throw PlanError("checkpoint", e.what());
  }
  if (network_shape.numel() != gmm.dim)
    throw PlanError("data", "the data have dimension " + std::to_string(gmm.dim) +
                                ", the network takes samples of shape " + network_shape.str());
  return {plan, std::move(network), std::move(gmm), std::move(rows), network_shape};
}

NllBoundResults run(const NllBoundPlan& given, report::Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const NllBoundInputs in = read_inputs(given);
  const diffusion::Schedule& schedule = in.network.schedule;
  auto network = diffusion::make_predictor(in.network);
  diffusion::GmmOracle oracle(in.gmm, schedule);
  const Tensor network_rows = datasets::with_sample_shape(in.rows, in.network_shape);

  NllBoundResults results;
  results.plan = given;
  results.resolved = in.plan;
  results.samples = in.rows.shape()[0];
  results.dim = in.gmm.dim;
  results.schedule = diffusion::schedule_kind_name(schedule.kind());
  results.T = schedule.T();
  const std::vector<NllBoundUnit> units = in.plan.units();
  progress.begin(static_cast<int64_t>(units.size()));
  for (const NllBoundUnit& unit : units) {
    // Every bound on the same noise (seed), so the rows are paired.
    diffusion::BoundOptions options;
    options.seed = in.plan.seed;
    options.reverse_variance = unit.variance;
    options.communicator = &dist::Communicator::world();  // under mpirun: the rows shared out
    options.progress = [&](int64_t done, int64_t total) {
      progress.status(unit.stage() + ": " + std::to_string(done) + "/" + std::to_string(total) +
                      " evaluations");
    };
    const bool is_network = unit.predictor == "network";
    results.rows.push_back(
        {unit.predictor, unit.variance,
         diffusion::evaluate_bound(
             is_network ? static_cast<diffusion::NoisePredictor&>(*network) : oracle, schedule,
             is_network ? network_rows : in.rows, options)});
    progress.advance(unit.stage());
  }
  progress.finish();
  results.exact_nll = in.gmm.nll_per_dim(in.rows);
  results.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return results;
}

}  // namespace dpm::experiments
