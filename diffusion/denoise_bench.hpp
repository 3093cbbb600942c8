#pragma once
// The denoising benchmark (SPEC §3): the NMSE of DM-based estimators beside the CME, LMMSE and
// LS on a GMM prior, for one schedule and one predictor (the exact oracle eps* or a trained
// network), over a grid of SNRs. The results driver and `dpmlab denoise-bench` call it.
//
// Observations: y = x + sigma n, sigma^2 = 10^(-snr_db / 10) (SNR = 1 / sigma^2 on unit-power
// data), n from one stream per SNR derived from the seed, so every estimator and every schedule
// sees the same noise and their differences are paired. Errors are reported with standard errors
// over the test samples: NMSE = sum_i e_i / sum_i p_i (e_i = ||x_i - x_hat_i||^2,
// p_i = ||x_i||^2), se = sqrt(sum_i (e_i - NMSE p_i)^2) / sum_i p_i (the delta method for a
// ratio); the gap to the CME uses the paired differences e_i - e_i(CME) the same way.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

struct DenoiseBenchEntry {
  std::string estimator;  // Estimator::name(), or "cme", "lmmse", "ls"
  int64_t T = 0;          // the schedule's T; 0 for the references, which do not depend on it
  double snr_db = 0.0;
  double nmse = 0.0, nmse_se = 0.0;
  double gap = 0.0, gap_se = 0.0;  // NMSE - NMSE(CME) on the same observations
  int64_t matched_step = 0;        // t_hat (0 for the references)
  int64_t evaluations = 0;         // predictor evaluations (batched calls)
  double seconds = 0.0;
};

struct DenoiseBenchOptions {
  std::vector<double> snr_db{-15.0, -10.0, -5.0, 0.0, 10.0, 20.0};
  std::vector<Estimator> estimators;  // the DM-based estimators to run
  bool references = true;             // also report the CME, LMMSE and LS
  uint64_t seed = 1;                  // observation noise and the estimators' own noise
  std::function<void(const DenoiseBenchEntry&)> on_entry;  // progress, after each entry
};

// x_test [n, N] drawn from `prior` (which the CME and LMMSE use).
std::vector<DenoiseBenchEntry> run_denoise_bench(const datasets::Gmm& prior, const Tensor& x_test,
                                                 const Schedule& schedule,
                                                 NoisePredictor& predictor,
                                                 const DenoiseBenchOptions& options);

// Markdown: NMSE per (T, estimator) x SNR; the gaps to the CME with their standard errors; the
// predictor evaluations per denoised batch.
std::string denoise_bench_markdown(const std::vector<DenoiseBenchEntry>& entries);

}  // namespace dpm::diffusion
