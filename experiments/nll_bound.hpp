#pragma once
// The variational bound on the NLL as an experiment (docs/protocol.md, "The variational bound";
// the estimator is diffusion::evaluate_bound): a trained network's bound over a data set of a
// known GMM, beside the GMM's exact NLL and the bound the exact noise predictor eps* reaches with
// the same schedule, so the bound's gap splits into the learning error (network against eps*)
// and what the fixed reverse variance and the T steps cost (eps* against the NLL).
//
//   NllBoundPlan plan;  plan.checkpoint = "runs/train/best.safetensors";  plan.validate();
//   const NllBoundResults results = run(plan, progress);
//   report::write(results, "runs/bound");  // experiments/nll_bound_report.hpp
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/objective.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

enum class DataSplit { train, val, test };

}  // namespace dpm::experiments

template <>
struct dpm::experiments::Choices<dpm::experiments::DataSplit> {
  static constexpr std::array<std::pair<DataSplit, const char*>, 3> values{
      {{DataSplit::train, "train"}, {DataSplit::val, "val"}, {DataSplit::test, "test"}}};
};

namespace dpm::experiments {

// One bound: a predictor with one reverse variance sigma_t^2.
struct NllBoundUnit {
  std::string predictor;  // "network" or "oracle"
  diffusion::ReverseVariance variance = diffusion::ReverseVariance::beta;

  std::string stage() const;  // "network, sigma_t^2 = beta"
};

struct NllBoundPlan {
  std::string checkpoint;  // a `dpmlab train` checkpoint of a GMM data set (required)
  std::string data;        // the data set directory; empty: the one the network was trained on
  DataSplit split = DataSplit::test;
  int64_t samples = 1000;  // the split's first N samples
  uint64_t seed = 0;       // the noise draws, the same for every bound (paired rows)

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("checkpoint", plan.checkpoint);
    visit("data", plan.data);
    visit("split", plan.split);
    visit("samples", plan.samples);
    visit("seed", plan.seed);
  }

  void validate() const;  // throws PlanError naming the field
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static NllBoundPlan from_json(const nlohmann::json& json);  // validated

  // The network and eps* with sigma_t^2 = beta_t, then both with beta~_t.
  std::vector<NllBoundUnit> units() const;
};

// What a plan names, read: the plan with the data directory filled in (the input is unchanged),
// the network, the data set's GMM and the samples [n, N] of the split.
struct NllBoundInputs {
  NllBoundPlan plan;
  diffusion::DpmCheckpoint network;
  datasets::Gmm gmm;
  Tensor rows;          // [n, N]
  Shape network_shape;  // one sample as the network takes it
};

// Throws PlanError naming the field when the files do not fit the plan (no data directory, no
// GMM beside the data, data of another dimension than the network's), std::runtime_error for a
// file that cannot be read.
NllBoundInputs read_inputs(const NllBoundPlan& plan);

struct NllBoundRow {
  std::string predictor;
  diffusion::ReverseVariance variance = diffusion::ReverseVariance::beta;
  diffusion::BoundResult result;
};

struct NllBoundResults {
  NllBoundPlan plan;      // as given (the run's config)
  NllBoundPlan resolved;  // as run: the data directory filled in
  int64_t samples = 0;    // rows of the split used
  int64_t dim = 0;
  std::string schedule;  // the network's schedule kind
  int64_t T = 0;
  double exact_nll = 0;           // of the GMM on the rows, nats per dimension
  std::vector<NllBoundRow> rows;  // in units() order
  double seconds = 0;
};

// Executes plan.units(), one progress unit each; status() counts a bound's evaluations.
NllBoundResults run(const NllBoundPlan& plan, report::Progress& progress);

}  // namespace dpm::experiments
