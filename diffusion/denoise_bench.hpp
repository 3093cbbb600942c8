#pragma once
// The denoising benchmark (docs/protocol.md, The denoiser): the NMSE of DM-based estimators beside
// the CME, LMMSE and LS on a GMM prior, for one schedule and one predictor (the exact oracle eps*
// or a trained network), over a grid of SNRs: the kernels of the experiment
// experiments/denoise_bench.hpp (`dpmlab denoise-bench`), which drives and reports them.
//
// Observations: y = x + sigma n, sigma^2 = 10^(-snr_db / 10) (SNR = 1 / sigma^2 on unit-power
// data), n from one stream per SNR derived from the seed, so every estimator and every schedule
// sees the same noise and their differences are paired. Errors are reported with standard errors
// over the test samples: NMSE = sum_i e_i / sum_i p_i (e_i = ||x_i - x_hat_i||^2,
// p_i = ||x_i||^2), se = sqrt(sum_i (e_i - NMSE p_i)^2) / sum_i p_i (the delta method for a
// ratio); the gap to the CME uses the paired differences e_i - e_i(CME) the same way.
//
// Beside the NMSE table (run_denoise_bench), three experiments that look inside the estimators:
// the error after every reverse step of mean forwarding (run_step_errors), the Monte-Carlo
// posterior mean against its number of runs M (run_posterior_mean_convergence) and the
// denoisers told a wrong SNR (run_snr_mismatch). Each draws the noise of the i-th SNR of its own
// list from the same stream as run_denoise_bench does for its i-th SNR.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/schedule.hpp"
#include "distributed/communicator.hpp"

namespace dpm::diffusion {

struct DenoiseBenchEntry {
  std::string predictor;  // DenoiseBenchOptions::predictor ("oracle", "network"); may be empty
  std::string estimator;  // Estimator::name(), or "cme", "lmmse", "ls"
  int64_t T = 0;          // the schedule's T; 0 for the references, which do not depend on it
  double snr_db = 0.0;
  double nmse = 0.0, nmse_se = 0.0;
  double gap = 0.0, gap_se = 0.0;  // NMSE - NMSE(CME) on the same observations
  int64_t matched_step = 0;        // t_hat (0 for the references)
  int64_t evaluations = 0;         // predictor evaluations (batched calls)
  double seconds = 0.0;
  // [DenoiseBenchOptions::example_rows, N]: the estimates of the first test rows (for "ls", the
  // observations y), kept to be shown, e.g. as images.
  std::vector<double> examples = {};
};

struct DenoiseBenchOptions {
  std::vector<double> snr_db{-15.0, -10.0, -5.0, 0.0, 10.0, 20.0};
  std::vector<Estimator> estimators;  // the DM-based estimators to run
  bool references = true;             // also report the CME, LMMSE and LS
  uint64_t seed = 1;                  // observation noise and the estimators' own noise
  std::string predictor;              // a label copied into every entry, e.g. "oracle"
  Shape sample_shape;                 // one row as the predictor takes it; empty: [N]
  int64_t example_rows = 0;           // the test rows whose estimates each entry keeps
  std::function<void(const DenoiseBenchEntry&)> on_entry;  // progress, after each entry
  // The ranks that share the test rows (nullptr: this process alone). The observations are drawn
  // for every row as one process draws them; the CME, LMMSE and every DM estimator run on each
  // rank's shard of the rows (the posterior mean's and DDIM's noise drawn for the whole batch,
  // BatchPart) and the estimates are gathered in row order, so the scores are the single
  // process's (up to the network's rounding on smaller batches). Collective.
  dist::Communicator* communicator = nullptr;
};

// x_test [n, N] drawn from `prior` (which the CME and LMMSE use).
std::vector<DenoiseBenchEntry> run_denoise_bench(const datasets::Gmm& prior, const Tensor& x_test,
                                                 const Schedule& schedule,
                                                 NoisePredictor& predictor,
                                                 const DenoiseBenchOptions& options);

// What the experiments below share: the prior, the clean test rows x_test [n, N] drawn from it,
// one schedule and one predictor (labelled, e.g. "oracle"), the seed of run_denoise_bench.
struct DenoiseExperiment {
  const datasets::Gmm& prior;
  const Tensor& x_test;
  const Schedule& schedule;
  NoisePredictor& predictor;
  std::string predictor_label;
  Shape sample_shape;  // one row as the predictor takes it (e.g. [1, N]); empty: [N]
  uint64_t seed = 1;
  std::function<void()> on_progress;  // after each SNR (each (SNR, offset) for the mismatch)
};

// Mean forwarding's state after every reverse step, against x.
struct StepErrorEntry {
  std::string predictor;
  int64_t T = 0;
  double snr_db = 0.0;
  int64_t start_step = 0;  // t_hat
  int64_t remaining = 0;   // steps still to go: t_hat (the start state), t_hat - 1, ..., 0
  double nmse = 0.0;       // of the state x_remaining itself; at remaining = 0, the estimate
  // Of x_remaining / sqrt(abar_remaining): the state read as an estimate of x (its scale
  // undone), what stopping the loop there would give.
  double nmse_rescaled = 0.0;
};

std::vector<StepErrorEntry> run_step_errors(const DenoiseExperiment& experiment,
                                            const std::vector<double>& snr_db);

// The posterior mean over M ancestral runs (re-sampling on) for every M of `sample_counts`, from
// one set of max(M) runs: the runs draw their noise in turn from one Rng, so the average of the
// first M is exactly Estimator posterior-mean-M<M> with that Rng. Each entry's evaluations and
// seconds are those of its own M runs (M t_hat evaluations).
struct MonteCarloEntry {
  std::string predictor;
  int64_t T = 0;
  double snr_db = 0.0;
  int64_t samples = 0;  // M
  double nmse = 0.0, nmse_se = 0.0;
  double gap = 0.0, gap_se = 0.0;  // NMSE - NMSE(CME) on the same observations
  int64_t evaluations = 0;
  double seconds = 0.0;
};

std::vector<MonteCarloEntry> run_posterior_mean_convergence(
    const DenoiseExperiment& experiment, const std::vector<double>& snr_db,
    const std::vector<int64_t>& sample_counts);

// The estimators told the SNR snr_db + offset_db while the observations have snr_db; "cme" (the
// exact CME computed with the wrong noise variance) is included when `with_cme` is set.
struct MismatchEntry {
  std::string predictor;  // empty for the CME
  std::string estimator;
  int64_t T = 0;  // 0 for the CME
  double snr_db = 0.0, offset_db = 0.0;
  int64_t matched_step = 0;  // t_hat of the assumed SNR (0 for the CME)
  double nmse = 0.0, nmse_se = 0.0;
};

std::vector<MismatchEntry> run_snr_mismatch(const DenoiseExperiment& experiment,
                                            const std::vector<Estimator>& estimators,
                                            const std::vector<double>& snr_db,
                                            const std::vector<double>& offsets_db, bool with_cme);

}  // namespace dpm::diffusion
