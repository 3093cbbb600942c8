// dpmlab audit: the Lipschitz audit of a trained noise network (experiments/lipschitz_audit.hpp,
// docs/lipschitz.md). Prints the summary and the tables and writes DIR/audit.md, DIR/audit.json
// and gnuplot plots (each .gp script beside its PNG).
#include <iostream>
#include <memory>

#include "apps/commands.hpp"
#include "apps/flag_table.hpp"
#include "experiments/lipschitz_audit.hpp"
#include "experiments/lipschitz_audit_report.hpp"

namespace dpm::cli {

using experiments::AuditPlan;

void register_audit_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "audit",
      "Lipschitz audit of a trained noise network: per step t, certified upper bounds (AutoLip "
      "from the layer norms), empirical lower bounds (measured Jacobian norms, pairwise ratios), "
      "exact values of the GMM's exact maps when the data's GMM is known, and the bounds that "
      "depend only on the schedule (each valid under its stated assumption); the same for the "
      "mean-forwarding denoiser at each SNR. Writes audit.md, audit.json and PNG plots "
      "(docs/lipschitz.md explains every number).\n"
      "Example: dpmlab audit runs/train/best.safetensors --out runs/audit");
  auto flags = std::make_shared<FlagTable<AuditPlan>>(command, "runs/audit");
  flags->add("checkpoint", &AuditPlan::checkpoint, "a checkpoint of `dpmlab train` (train_dpm)")
      ->check(CLI::ExistingFile);
  flags
      ->add("--gmm", &AuditPlan::gmm,
            "the data's GMM (datasets::save_gmm); default: gmm.safetensors of the checkpoint's "
            "training data directory, if there")
      ->check(CLI::ExistingFile);
  flags->add("--data", &AuditPlan::data,
             "clean samples FILE.safetensors[:tensor] (default tensor: test); default: the "
             "training data directory's data.safetensors, else GMM draws, else N(0, I)");
  flags->add("--t-grid", &AuditPlan::t_grid,
             "steps to audit: auto (1, 2, 5, 10, 20, ... and T) or a list like 1,10,100");
  flags->add("--snr", &AuditPlan::snr, "denoiser SNRs in dB: START:STOP:STEP or a list");
  flags->add("--start", &AuditPlan::start,
             "denoiser start step: t_hat (default) or t_hat-1 (the authors' code)");
  flags->add("--samples", &AuditPlan::samples,
             "points per step (and observations for D*); one batch through the network, 1..1024");
  flags->add("--denoiser-samples", &AuditPlan::denoiser_samples,
             "observations for the network's whole denoiser (costly: start step x 2 x this "
             "network evaluations per iteration), 1..1024");
  flags->add("--oracle-samples", &AuditPlan::oracle_samples,
             "points per step for the exact statistics on GMM data, 1..1000000");
  flags->add("--tolerance", &AuditPlan::tolerance,
             "relative tolerance of every measured Jacobian norm (extrapolated), 0..1");
  flags->add("--max-iterations", &AuditPlan::max_iterations,
             "J v products per step, at most (3..10000)");
  flags->add("--denoiser-iterations", &AuditPlan::denoiser_iterations,
             "J v products through the whole denoiser, 1..1000");
  flags->add("--denoiser-method", &AuditPlan::denoiser_method,
             "forward (J v only, by central differences per step) or krylov (also J^T u through "
             "the tape, step by step: about 2.5 times the cost per iteration)");
  flags->seed(&AuditPlan::seed);
  command->callback([flags] {
    const AuditPlan plan = flags->plan();
    const CommonArgs& common = flags->common();
    start_run(common);
    write_used_config(common, experiments::plan_to_json(plan));
    const auto data = flags->usage_errors([&] { return experiments::load_audit_data(plan); });
    experiments::report::TerminalProgress progress("audit", "parts",
                                                   common.quiet ? nullptr : stderr);
    const experiments::LipschitzAudit audit =
        experiments::run_lipschitz_audit(plan, data->inputs, progress);
    std::cout << experiments::report::audit_text(audit);
    const auto written = experiments::report::write(audit, common.out);
    std::string plotted;
    for (const std::string& png : written.plots) plotted += " " + png;
    std::cout << "\nPoints: " << audit.points << ". Wrote " << common.out << "/audit.md, "
              << "audit.json" << (plotted.empty() ? "" : ",") << plotted
              << " (plot scripts *.gp beside them).\n";
  });
}

}  // namespace dpm::cli
