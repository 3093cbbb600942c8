// dpmlab bound: the variational bound on the NLL (docs/protocol.md, The variational bound) of a
// trained network over a data set of a known GMM, beside the GMM's exact NLL and the bound the
// exact noise predictor eps* reaches with the same schedule, so the bound's gap splits into the
// learning error (network against eps*) and what the fixed reverse variance and the T steps cost
// (eps* against the NLL).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/flag_config.hpp"
#include "autograd/progress_line.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/report/files.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"

namespace dpm::cli {
namespace {

using experiments::report::Plot;
using experiments::report::render_plots;
using experiments::report::write_text;

namespace fs = std::filesystem;

struct BoundArgs {
  CommonArgs common;
  std::string checkpoint, data, split = "test";
  int64_t samples = 1000;
};

struct BoundRow {
  std::string predictor;  // "network" or "oracle"
  diffusion::ReverseVariance variance;
  diffusion::BoundResult result;
};

std::string number(double value) {
  return experiments::report::number(value, "%.5g");
}

void run_bound(const CLI::App* command, BoundArgs& args) {
  FlagConfig config(command, args.common);
  config.text("--checkpoint", args.checkpoint);
  config.text("--data", args.data);
  config.text("--split", args.split);
  config.integer("--samples", args.samples);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();
  if (args.checkpoint.empty()) throw CLI::ValidationError("--checkpoint", "is required");
  if (args.split != "train" && args.split != "val" && args.split != "test")
    throw CLI::ValidationError("--split", "must be train, val or test, got '" + args.split + "'");

  const diffusion::DpmCheckpoint checkpoint = diffusion::load_dpm_checkpoint(args.checkpoint);
  const datasets::TrainingData trained_on =
      datasets::training_data(checkpoint.metadata, args.checkpoint);
  if (args.data.empty()) args.data = trained_on.source;
  if (args.data.empty())
    throw CLI::ValidationError("--data", "is required: the checkpoint names no data set directory");
  if (!fs::exists(fs::path(args.data) / datasets::kGmmFileName))
    throw CLI::ValidationError("--data", "'" + args.data + "' has no " + datasets::kGmmFileName +
                                             ": give a data set directory of `dpmlab gmm make` "
                                             "or `gmm fit --sample`");
  start_run(args.common);
  write_used_config(args.common, used);

  const datasets::GmmDataset data = datasets::read_gmm_dataset(args.data);
  const datasets::Gmm gmm =
      datasets::load_gmm((fs::path(args.data) / datasets::kGmmFileName).string());
  const Tensor& split = args.split == "train" ? data.train
                        : args.split == "val" ? data.val
                                              : data.test;
  const Tensor rows = datasets::flatten_rows(split)
                          .narrow(0, 0, std::min(args.samples, split.shape()[0]))
                          .contiguous();
  const Shape model_shape =
      trained_on.model_shape ? *trained_on.model_shape : as_usage_error("--checkpoint", [&] {
        return datasets::model_input_shape(checkpoint.model->config(), Shape{gmm.dim});
      });
  if (model_shape.numel() != gmm.dim)
    throw CLI::ValidationError("--data", "the data have dimension " + std::to_string(gmm.dim) +
                                             ", the network takes samples of shape " +
                                             model_shape.str());

  const diffusion::Schedule& schedule = checkpoint.schedule;
  auto network = diffusion::make_predictor(checkpoint);
  diffusion::GmmOracle oracle(gmm, schedule);
  const std::vector<diffusion::ReverseVariance> variances = {
      diffusion::ReverseVariance::beta, diffusion::ReverseVariance::beta_tilde};
  // Every bound on the same noise (seed), so the rows are paired; the same batching for the
  // progress total.
  diffusion::BoundOptions base;
  base.seed = args.common.seed;
  const int64_t batches_per_bound =
      (rows.shape()[0] + base.batch_size - 1) / base.batch_size * schedule.T();
  struct Contender {
    const char* label;
    diffusion::NoisePredictor& predictor;
    Tensor data;  // shaped as the predictor takes it
  };
  const Contender contenders[] = {
      {"network", *network, datasets::with_sample_shape(rows, model_shape)},
      {"oracle", oracle, rows}};
  ProgressLine progress("bound",
                               2 * static_cast<int64_t>(variances.size()) * batches_per_bound,
                               "evaluations", args.common.quiet ? nullptr : stderr, 1.0);
  int64_t done_before = 0;
  std::vector<BoundRow> table;
  for (diffusion::ReverseVariance variance : variances) {
    for (const Contender& c : contenders) {
      diffusion::BoundOptions options = base;
      options.reverse_variance = variance;
      options.progress = [&](int64_t done, int64_t) { progress.update(done_before + done); };
      table.push_back(
          {c.label, variance, diffusion::evaluate_bound(c.predictor, schedule, c.data, options)});
      done_before += batches_per_bound;
    }
  }
  progress.finish();
  const double nll = gmm.nll_per_dim(rows);

  std::ostringstream md;
  md << "# Variational bound\n\n"
     << "Network " << args.checkpoint << " (" << diffusion::schedule_kind_name(schedule.kind())
     << ", T = " << schedule.T() << ") on " << rows.shape()[0] << " " << args.split
     << " samples of " << args.data << " (normalised units, N = " << gmm.dim
     << "); oracle = the exact eps* of the data's GMM with the same schedule. Bound and terms in "
        "nats per dimension, one noise draw per sample and step (seed "
     << args.common.seed << ", the same for every row). Exact NLL of the GMM: " << number(nll)
     << " nats/dim.\n\n"
     << "| predictor | sigma_t^2 | bound | std. error | L_T | sum L_t-1 (t >= 2) | L_0 | bound - "
        "NLL |\n|---|---|---|---|---|---|---|---|\n";
  nlohmann::json json = {{"config", used},
                         {"checkpoint", args.checkpoint},
                         {"data", args.data},
                         {"split", args.split},
                         {"samples", rows.shape()[0]},
                         {"T", schedule.T()},
                         {"exact_nll", nll},
                         {"seconds", progress.elapsed_seconds()},
                         {"rows", nlohmann::json::array()}};
  std::ostringstream csv;
  csv << "t";
  for (const BoundRow& row : table)
    csv << "," << row.predictor << "_" << diffusion::reverse_variance_name(row.variance);
  csv << "\n";
  for (const BoundRow& row : table) {
    const diffusion::BoundResult& r = row.result;
    md << "| " << row.predictor << " | " << diffusion::reverse_variance_name(row.variance) << " | "
       << number(r.bound) << " | " << number(r.std_error) << " | " << number(r.prior) << " | "
       << number(r.transitions) << " | " << number(r.decoder) << " | " << number(r.bound - nll)
       << " |\n";
    nlohmann::json entry = r.to_json();
    entry["predictor"] = row.predictor;
    entry["reverse_variance"] = diffusion::reverse_variance_name(row.variance);
    entry["gap_to_nll"] = r.bound - nll;
    json["rows"].push_back(entry);
  }
  for (int64_t t = 1; t <= schedule.T(); ++t) {
    csv << t;
    for (const BoundRow& row : table) csv << "," << experiments::report::plot_number(row.result.per_step[t]);
    csv << "\n";
  }
  const fs::path out(args.common.out);
  write_text(out / "bound.md", md.str());
  write_text(out / "bound.json", json.dump(2) + "\n");
  write_text(out / "bound_per_step.csv", csv.str());
  if (!args.common.quiet) std::cout << md.str() << "\n";
  std::cout << "Wrote " << (out / "bound.md").string() << ", bound.json and bound_per_step.csv in "
            << ProgressLine::format_duration(progress.elapsed_seconds()) << ".\n";
}

}  // namespace

void register_bound_command(CLI::App& app) {
  auto args = std::make_shared<BoundArgs>();
  CLI::App* bound = app.add_subcommand(
      "bound",
      "The variational bound on the NLL (nats per dimension, all T terms, with sigma_t^2 = beta_t "
      "and beta~_t) of a trained network over a GMM data set, beside the GMM's exact NLL and the "
      "bound of the exact noise predictor eps* with the same schedule. Writes bound.md, "
      "bound.json and bound_per_step.csv (every term L_t).\n"
      "Example: dpmlab bound --checkpoint runs/train/best.safetensors --samples 500 --out "
      "runs/bound");
  bound
      ->add_option("--checkpoint", args->checkpoint,
                   "a checkpoint of a `dpmlab train` run on a GMM data set")
      ->check(CLI::ExistingFile);
  bound->add_option("--data", args->data,
                    "the data set directory (default: the one the network was trained on)");
  bound->add_option("--split", args->split, "train, val or test")
      ->check(CLI::IsMember({"train", "val", "test"}))
      ->capture_default_str();
  bound->add_option("--samples", args->samples, "use the split's first N samples")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}))
      ->capture_default_str();
  add_common_flags(bound, args->common, "runs/bound");
  bound->callback([bound, args] { run_bound(bound, *args); });
}

}  // namespace dpm::cli
