// dpmlab training-report: renders the training report of a `dpmlab train` run directory from its
// metrics.jsonl (experiments/training_report.hpp), at any time, also while the run goes on.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "experiments/training_report.hpp"

namespace dpm::cli {
namespace {

struct TrainingReportArgs {
  std::string run;  // the run directory
  CommonArgs common;
};

void run_training_report(const TrainingReportArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  const std::filesystem::path metrics = std::filesystem::path(args.run) / "metrics.jsonl";
  if (!std::filesystem::exists(metrics))
    throw CLI::ValidationError("RUN", "'" + args.run +
                                          "' has no metrics.jsonl: give the --out directory of a "
                                          "`dpmlab train` run");
  CommonArgs common = args.common;
  if (common.out.empty()) common.out = (std::filesystem::path(args.run) / "report").string();
  const experiments::TrainingTrajectory trajectory = experiments::read_training_metrics(metrics);
  const experiments::report::Written written = experiments::report::write(trajectory, common.out);
  print_written(common, written,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace

void register_training_report_command(CLI::App& app) {
  auto args = std::make_shared<TrainingReportArgs>();
  CLI::App* command = app.add_subcommand(
      "training-report",
      "Render the training report of a `dpmlab train` run directory from its metrics.jsonl "
      "(also mid-run): the loss, the layers' spectral norms and the certified bound "
      "(--track-spectral), and the empirical Lipschitz constants of mu_theta(., t) beside the "
      "exact CME's bounds (--track-jacobian), with a summary of when they cross.\n"
      "Example: dpmlab training-report runs/train");
  command->add_option("RUN", args->run, "the run directory (dpmlab train --out)")->required();
  command->add_option("--out", args->common.out, "where the report goes (default: RUN/report)");
  command->add_flag("--quiet", args->common.quiet, "do not print the report");
  command->callback([args] { run_training_report(*args); });
}

}  // namespace dpm::cli
