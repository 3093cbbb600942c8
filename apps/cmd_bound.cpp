// dpmlab bound: the variational bound of experiments/nll_bound.hpp (a trained network's, eps*'s
// and the exact NLL of the data's GMM), its flags bound to the plan's fields. Writes bound.md
// (also printed), bound.json and bound_per_step.csv into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "experiments/nll_bound.hpp"
#include "experiments/nll_bound_report.hpp"

namespace dpm::cli {

void register_bound_command(CLI::App& app) {
  using Plan = experiments::NllBoundPlan;
  CLI::App* command = app.add_subcommand(
      "bound",
      "The variational bound on the NLL (nats per dimension, all T terms, with sigma_t^2 = beta_t "
      "and beta~_t) of a trained network over a GMM data set, beside the GMM's exact NLL and the "
      "bound of the exact noise predictor eps* with the same schedule. Writes bound.md, "
      "bound.json and bound_per_step.csv (every term L_t).\n"
      "Example: dpmlab bound --checkpoint runs/train/best.safetensors --samples 500 --out "
      "runs/bound");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/bound");
  flags
      ->add("--checkpoint", &Plan::checkpoint,
            "a checkpoint of a `dpmlab train` run on a GMM data set")
      ->check(CLI::ExistingFile);
  flags->add("--data", &Plan::data,
             "the data set directory (default: the one the network was trained on)");
  flags->add("--split", &Plan::split, "train, val or test");
  flags->add("--samples", &Plan::samples, "use the split's first N samples");
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "bound", "bounds"); });
}

}  // namespace dpm::cli
