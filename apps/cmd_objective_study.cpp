// dpmlab objective-study: L_simple, L_vlb (uniform and importance-sampled t) and L_hybrid on one
// network and one GMM data set (experiments/objective_study.hpp), its flags bound to the plan's
// fields. Writes objectives.md (also printed), objectives.json, objectives.csv and the plots into
// --out, the trainings into --runs (default: OUT/runs), where a rerun reuses or resumes them.
#include <filesystem>
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "experiments/objective_study.hpp"
#include "experiments/objective_study_report.hpp"

namespace dpm::cli {

void register_objective_study_command(CLI::App& app) {
  using Plan = experiments::ObjectiveStudyPlan;
  CLI::App* command = app.add_subcommand(
      "objective-study",
      "Train one network on a GMM data set with L_simple, L_vlb (t uniform and importance-"
      "sampled) and L_hybrid for the same number of steps, tracking its layers' spectral norms "
      "and the empirical Lipschitz constants of mu_theta(., t) while it trains; then compare the "
      "NLL bound with the exact NLL, the denoising NMSE (Tweedie, mean forwarding) over the CME "
      "with the network's and with eps*, and the tracked constants against the exact CME's. "
      "Writes objectives.md, .json, .csv and plots into --out; the trainings go into --runs and "
      "a rerun reuses finished ones and resumes an interrupted one.\n"
      "Example: dpmlab objective-study --data runs/gmm --train-config configs/gmm_mlp.json --steps "
      "20000 --out runs/objectives");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/objective-study");
  flags->add("--data", &Plan::data, "a GMM data set directory (`dpmlab gmm make`)");
  flags
      ->add("--train-config", &Plan::train_config,
            "a training config (DpmTrainingConfig JSON, e.g. configs/gmm_mlp.json) for the "
            "model, schedule, optimizer and trainer; its objective's target is kept")
      ->check(CLI::ExistingFile);
  flags->add("--runs", &Plan::runs, "where the trainings go (default: OUT/runs)");
  flags->add("--objectives", &Plan::objectives, "simple, vlb, vlb-importance, hybrid");
  flags->add("--hybrid-lambda", &Plan::hybrid_lambda, "lambda of L_simple + lambda L_vlb");
  flags->add("--steps", &Plan::steps, "training steps of every objective (0: the config's)");
  flags->add("--track-every", &Plan::track_every,
             "steps between tracking scans (a multiple of the config's log_every)");
  flags->add("--track-snr", &Plan::track_snr, "SNRs (dB) whose steps t_hat are tracked");
  flags->add("--probes", &Plan::probes, "probe points per tracked step");
  flags->add("--nll-samples", &Plan::nll_samples, "test samples of the variational bound");
  flags->add("--denoise-samples", &Plan::denoise_samples, "test samples of the denoisers");
  flags->add("--denoise-snr", &Plan::denoise_snr, "SNRs (dB) of the denoisers");
  flags->seed(&Plan::seed);
  command->callback([flags] {
    run_experiment<Plan>(*flags, "objective-study", "units", [](Plan& plan, const CommonArgs& c) {
      if (plan.runs.empty()) plan.runs = (std::filesystem::path(c.out) / "runs").string();
    });
  });
}

}  // namespace dpm::cli
