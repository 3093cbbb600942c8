// dpmlab denoise-bench: the denoising benchmark of experiments/denoise_bench.hpp, its flags bound
// to the plan's fields. Writes a CSV per part, denoise_bench.json, denoise_bench.md (also
// printed) and gnuplot plots (each .gp beside its PNG) into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "experiments/denoise_bench.hpp"
#include "experiments/denoise_bench_report.hpp"

namespace dpm::cli {

void register_denoise_bench_command(CLI::App& app) {
  using Plan = experiments::DenoiseBenchPlan;
  CLI::App* command = app.add_subcommand(
      "denoise-bench",
      "Benchmark the DM-based denoisers on a GMM prior beside its exact CME, LMMSE and LS: with "
      "the exact noise predictor eps* of the GMM (oracle) and, with --checkpoint, a trained "
      "network. Experiments (--experiments, all by default): nmse (NMSE against the SNR for mean "
      "forwarding at several T, one-step Tweedie, one ancestral run, the Monte-Carlo posterior "
      "mean, DDIM; with NFE and wall time), steps (the error after every reverse step of mean "
      "forwarding), resampling (re-sampling on against off, and the posterior mean against the "
      "number of runs M), mismatch (the denoiser told a wrong SNR). Writes CSVs, "
      "denoise_bench.json, denoise_bench.md and PNG plots into --out.\n"
      "Example: dpmlab denoise-bench --gmm runs/gmm/gmm.safetensors --checkpoint "
      "runs/train/best.safetensors --out runs/denoise-bench");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/denoise-bench");
  flags->add("--gmm", &Plan::gmm,
             "the prior: a gmm.safetensors of `dpmlab gmm make` (normalised data); default with "
             "--checkpoint: the one of its training data directory");
  flags
      ->add("--checkpoint", &Plan::checkpoint,
            "a network trained by `dpmlab train` on data of this GMM (optional)")
      ->check(CLI::ExistingFile);
  flags->add("--experiments", &Plan::experiments, "a list of nmse, steps, resampling, mismatch");
  flags->add("--samples", &Plan::samples,
             "clean test samples drawn from the GMM (one batch per estimator and SNR), 2..10^6");
  flags->add("--snr", &Plan::snr, "SNRs in dB: START:STOP:STEP or a list");
  flags->add("--T", &Plan::oracle_T,
             "the oracle's T for mean forwarding and Tweedie (the network: its own T)");
  flags->add("--schedule", &Plan::schedule,
             "the oracle's schedule: paper_linear, ddpm_linear or cosine (default: the "
             "checkpoint's, else paper_linear)");
  flags->add("--detail-T", &Plan::detail_T,
             "T of the oracle's costly estimators and detailed experiments (default 0: the "
             "checkpoint's T, else 50)");
  flags->add("--mc-samples", &Plan::mc_samples,
             "M of the Monte-Carlo posterior mean in the NMSE table (M t_hat NFE)");
  flags->add("--step-snr", &Plan::step_snr, "SNRs (dB) of the per-step experiment");
  flags->add("--mc-M", &Plan::mc_M, "run counts M of the posterior mean against M");
  flags->add("--mc-snr", &Plan::mc_snr, "SNRs (dB) of the posterior mean against M");
  flags->add("--mismatch", &Plan::mismatch,
             "assumed minus true SNR in dB: START:STOP:STEP or a list");
  flags->add("--mismatch-snr", &Plan::mismatch_snr, "true SNRs (dB) of the mismatch");
  flags->add("--estimators", &Plan::estimators,
             "the NMSE table's DM estimators: all (mean forwarding, Tweedie, one ancestral run, "
             "the posterior mean over --mc-samples runs, DDIM) or cheap (mean forwarding and "
             "Tweedie, a fraction of the network evaluations)");
  flags->add("--predictors", &Plan::predictors,
             "who predicts eps: a list of oracle (the GMM's exact eps*) and network (the "
             "checkpoint's); without oracle the network's table has the CME, LMMSE and LS (for a "
             "second network on the test samples of a run that has the oracle's rows)");
  flags->add("--grid-images", &Plan::grid_images,
             "test images shown denoised at every SNR of the NMSE table (denoised.png: noisy, "
             "CME, mean forwarding and Tweedie with the network and with eps*, truth), when the "
             "network was trained on images; 0: none");
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "denoise-bench", "parts"); });
}

}  // namespace dpm::cli
