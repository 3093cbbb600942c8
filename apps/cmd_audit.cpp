// dpmlab audit: the Lipschitz audit of experiments/lipschitz_audit.hpp (docs/lipschitz.md), its
// flags bound to the plan's fields. Writes audit.md (also printed), audit.json and gnuplot plots
// (each .gp script beside its PNG) into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "experiments/lipschitz_audit.hpp"
#include "experiments/lipschitz_audit_report.hpp"

namespace dpm::cli {

void register_audit_command(CLI::App& app) {
  using Plan = experiments::AuditPlan;
  CLI::App* command = app.add_subcommand(
      "audit",
      "Lipschitz audit of a trained noise network: per step t, certified upper bounds (AutoLip "
      "from the layer norms), empirical lower bounds (measured Jacobian norms, pairwise ratios), "
      "exact values of the GMM's exact maps when the data's GMM is known, and the bounds that "
      "depend only on the schedule (each valid under its stated assumption); the same for the "
      "mean-forwarding denoiser at each SNR. Writes audit.md, audit.json and PNG plots "
      "(docs/lipschitz.md explains every number).\n"
      "Example: dpmlab audit runs/train/best.safetensors --out runs/audit");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/audit");
  flags->add("checkpoint", &Plan::checkpoint, "a checkpoint of `dpmlab train` (train_dpm)")
      ->check(CLI::ExistingFile);
  flags
      ->add("--gmm", &Plan::gmm,
            "the data's GMM (datasets::save_gmm); default: gmm.safetensors of the checkpoint's "
            "training data directory, if there")
      ->check(CLI::ExistingFile);
  flags->add("--data", &Plan::data,
             "clean samples FILE.safetensors[:tensor] (default tensor: test); default: the "
             "training data directory's data.safetensors, else GMM draws, else N(0, I)");
  flags->add("--t-grid", &Plan::t_grid,
             "steps to audit: auto (1, 2, 5, 10, 20, ... and T) or a list like 1,10,100");
  flags->add("--snr", &Plan::snr, "denoiser SNRs in dB: START:STOP:STEP or a list");
  flags->add("--start", &Plan::start,
             "denoiser start step: t_hat (default) or t_hat-1 (the authors' code)");
  flags->add("--samples", &Plan::samples,
             "points per step (and observations for D*); one batch through the network, 1..1024");
  flags->add("--denoiser-samples", &Plan::denoiser_samples,
             "observations for the network's whole denoiser (costly: start step x 2 x this "
             "network evaluations per iteration), 1..1024");
  flags->add("--oracle-samples", &Plan::oracle_samples,
             "points per step for the exact statistics on GMM data, 1..1000000");
  flags->add("--tolerance", &Plan::tolerance,
             "relative tolerance of every measured Jacobian norm (extrapolated), 0..1");
  flags->add("--max-iterations", &Plan::max_iterations,
             "J v products per step, at most (3..10000)");
  flags->add("--denoiser-iterations", &Plan::denoiser_iterations,
             "J v products through the whole denoiser, 1..1000");
  flags->add("--denoiser-method", &Plan::denoiser_method,
             "forward (J v only, by central differences per step) or krylov (also J^T u through "
             "the tape, step by step: about 2.5 times the cost per iteration)");
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "audit", "parts"); });
}

}  // namespace dpm::cli
