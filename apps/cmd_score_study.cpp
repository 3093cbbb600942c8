// dpmlab score-study: score estimation by gradient descent (experiments/score_study.hpp), its
// flags bound to the plan's fields. Writes score_study.md (also printed), score_study.json,
// runs.csv, curves.csv and the plots into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "experiments/score_study.hpp"
#include "experiments/score_study_report.hpp"

namespace dpm::cli {

void register_score_study_command(CLI::App& app) {
  using Plan = experiments::ScoreStudyPlan;
  CLI::App* command = app.add_subcommand(
      "score-study",
      "Score estimation by gradient descent, measured against the exact score of a GMM: a "
      "two-layer network f = A sigma(W [x; e(t)] + b) / sqrt(m) trained by GD on the denoising "
      "score matching risk of n samples x J noise draws (regression with noisy labels). Along "
      "every run: the empirical and held-out risks and the exact score error; an early-stopping "
      "rule on the held-out risk beside the oracle-best iteration; sweeps over n (log-log slope "
      "with its confidence interval over seeds) and over m (GD on the network against GD on its "
      "linearisation f_lin and kernel regression with the NTK); the stopped network in the "
      "one-step Tweedie denoiser. Writes score_study.md, .json, runs.csv, curves.csv and plots "
      "into --out.\n"
      "Example: dpmlab score-study --dim 4 --seeds 3 --out runs/score-study");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/score-study");
  flags->preset("--quick", &Plan::quick,
                "a run of seconds: N = 2, T = 50, n 16 and 32, m 64 and 256, 200 iterations, 2 "
                "seeds; other flags override it");
  flags->add("--gmm", &Plan::gmm,
             "a gmm.safetensors (`dpmlab gmm make`, `gmm fit`); default: a random GMM of --dim "
             "and --components")
      ->check(CLI::ExistingFile);
  flags->add("--dim", &Plan::dim, "N of the random GMM (the paper's construction, normalised)");
  flags->add("--components", &Plan::components, "K of the random GMM");
  flags->add("--gmm-seed", &Plan::gmm_seed, "the random GMM's draw");
  flags->add("--steps", &Plan::steps, "T of the paper's linear schedule");
  flags->add("--samples", &Plan::samples, "n of the sample-size sweep");
  flags->add("--widths", &Plan::widths, "m of the width sweep (GD on the network and on f_lin)");
  flags->add("--base-samples", &Plan::base_samples, "n of the width sweep");
  flags->add("--base-width", &Plan::base_width, "m of the sample-size sweep");
  flags->add("--draws", &Plan::draws, "J noise draws (t, eps) per sample: the noisy labels");
  flags->add("--activation", &Plan::activation, "relu or silu");
  flags->add("--init", &Plan::init,
             "symmetric (f = 0 at the start: half the units mirror the other half with A "
             "negated) or gaussian (all weights independent)");
  flags->add("--time-features", &Plan::time_features, "E cosine features of t");
  flags->add("--lr", &Plan::lr, "learning rate of GD (and SGD)");
  flags->add("--iterations", &Plan::iterations, "GD iterations per run");
  flags->add("--eval-every", &Plan::eval_every, "iterations between evaluations");
  flags->add("--batch", &Plan::batch,
             "0: full-batch GD; else SGD on minibatches of this many rows (no f_lin then)");
  flags->add("--holdout", &Plan::holdout, "held-out samples as a fraction of n (at least 8)");
  flags->add("--patience", &Plan::patience,
             "evaluations without a held-out improvement before the rule stops");
  flags->add("--error-samples", &Plan::error_samples,
             "fresh (x0, t, eps) for the exact score error");
  flags->add("--kernel-max", &Plan::kernel_max,
             "NTK kernel regression on the width sweep when n J N <= this");
  flags->add("--seeds", &Plan::seeds, "independent runs per point of each sweep");
  flags->add("--denoise-snr", &Plan::denoise_snr,
             "SNRs (dB) of the Tweedie denoiser with the stopped network (none: [] in --config)");
  flags->add("--denoise-samples", &Plan::denoise_samples, "test samples of the denoiser");
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "score-study", "runs"); });
}

}  // namespace dpm::cli
