// dpmlab inverse-bench: the inverse-problem benchmark of experiments/inverse_bench.hpp, its flags
// bound to the plan's fields. Writes inverse_bench.md (also printed), inverse_bench.json,
// inverse_bench.csv, measurements.safetensors and the NFE plots into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "apps/solver_flags.hpp"
#include "experiments/inverse_bench.hpp"
#include "experiments/inverse_bench_report.hpp"

namespace dpm::cli {

void register_inverse_bench_command(CLI::App& app) {
  using Plan = experiments::InverseBenchPlan;
  CLI::App* command = app.add_subcommand(
      "inverse-bench",
      "Benchmark inverse-problem solvers with a DM prior (RED-Diff, DPS, PiGDM, DDRM) on a GMM "
      "prior, y = A x0 + sigma_y n, each with the exact noise predictor eps* of the GMM and, with "
      "--checkpoint, a trained network, against the exact posterior mean E[x0 | y] (with LMMSE "
      "and least squares beside it). Tasks: compressed sensing (--cs-rows) and random "
      "inpainting (--missing) at every --sigma-y. Parts: table, nfe (NMSE against the number of "
      "evaluations), ablation (RED-Diff's weighting, lambda and step order). Writes "
      "inverse_bench.md, .json, .csv, measurements.safetensors and plots into --out.\n"
      "Example: dpmlab inverse-bench --checkpoint runs/train/best.safetensors --out "
      "runs/inverse-bench");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/inverse-bench");
  flags->preset("--quick", &Plan::quick,
                 "a small size for a first look: cs M=8 and inpainting 50% at sigma_y 0.1, 16 "
                 "samples, 5-20 steps per solver; other flags override it");
  flags->add("--gmm", &Plan::gmm,
             "the prior: a gmm.safetensors of `dpmlab gmm make`; default with --checkpoint: the "
             "one of its training data directory");
  flags
      ->add("--checkpoint", &Plan::checkpoint,
            "a network trained by `dpmlab train` on data of this GMM (optional)")
      ->check(CLI::ExistingFile);
  flags->add("--parts", &Plan::parts, "a list of table, nfe, ablation");
  flags->add("--cs-rows", &Plan::cs_rows, "compressed sensing: rows M of each M x N matrix");
  flags->add("--missing", &Plan::missing, "random inpainting: fractions of entries missing");
  flags->add("--sigma-y", &Plan::sigma_y, "measurement noise levels (> 0)");
  flags->add("--samples", &Plan::samples, "test samples drawn from the GMM, 2..10^6");
  flags->add("--schedule", &Plan::schedule,
             "eps*'s schedule without --checkpoint (default paper_linear)");
  flags->add("--T", &Plan::T, "eps*'s T without --checkpoint (default 300)");
  add_solver_flags(*flags);
  flags->add("--nfe-steps", &Plan::nfe_steps, "the NFE sweep's grid steps");
  flags->add("--ablation-lambda", &Plan::ablation_lambda, "the ablation's RED-Diff lambdas");
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "inverse-bench", "units"); });
}

}  // namespace dpm::cli
