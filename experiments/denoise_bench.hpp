#pragma once
// The denoising benchmark as an experiment (docs/protocol.md, "The denoiser"; the kernels are
// diffusion/denoise_bench.hpp): the DM-based denoisers with the exact oracle eps* of a GMM prior
// and, given a checkpoint, a trained network, beside the GMM's CME, LMMSE and LS. Parts: nmse
// (NMSE against the SNR, with NFE and wall time), steps (the error after every reverse step of
// mean forwarding), resampling (re-sampling on against off, and the Monte-Carlo posterior mean
// against its number of runs M) and mismatch (the denoiser told a wrong SNR).
//
//   DenoiseBenchPlan plan;  plan.gmm = "runs/gmm/gmm.safetensors";  plan.validate();
//   report::TerminalProgress progress("denoise-bench", "parts", stderr);
//   const DenoiseBenchResults results = run(plan, progress);
//   report::write(results, "runs/denoise-bench");  // experiments/denoise_bench_report.hpp
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/shape.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/denoise_bench.hpp"
#include "diffusion/denoiser.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::experiments {

enum class DenoiseBenchPart { nmse, steps, resampling, mismatch };
// The NMSE table's DM estimators: all (mean forwarding, Tweedie, one ancestral run, the
// posterior mean over mc_samples runs, DDIM) or cheap (mean forwarding and Tweedie).
enum class DenoiseEstimators { all, cheap };
// Who predicts eps: the GMM's exact eps* (oracle) and the checkpoint's network.
enum class DenoisePredictor { oracle, network };

}  // namespace dpm::experiments

template <>
struct dpm::experiments::Choices<dpm::experiments::DenoiseBenchPart> {
  static constexpr std::array<std::pair<DenoiseBenchPart, const char*>, 4> values{
      {{DenoiseBenchPart::nmse, "nmse"},
       {DenoiseBenchPart::steps, "steps"},
       {DenoiseBenchPart::resampling, "resampling"},
       {DenoiseBenchPart::mismatch, "mismatch"}}};
};

template <>
struct dpm::experiments::Choices<dpm::experiments::DenoiseEstimators> {
  static constexpr std::array<std::pair<DenoiseEstimators, const char*>, 2> values{
      {{DenoiseEstimators::all, "all"}, {DenoiseEstimators::cheap, "cheap"}}};
};

template <>
struct dpm::experiments::Choices<dpm::experiments::DenoisePredictor> {
  static constexpr std::array<std::pair<DenoisePredictor, const char*>, 2> values{
      {{DenoisePredictor::oracle, "oracle"}, {DenoisePredictor::network, "network"}}};
};

namespace dpm::experiments {

// The oracle's T for the costly estimators when no network fixes it: small enough that the
// M = 64 Monte-Carlo mean stays fast (the figures are alike for T = 50..5000).
inline constexpr int64_t kOracleDetailT = 50;

// One piece of the benchmark's work: a call of one kernel of diffusion/denoise_bench.hpp.
enum class DenoiseBenchUnitKind {
  nmse_table,        // run_denoise_bench: the NMSE table's rows of one predictor at one T
  resampling_table,  // run_denoise_bench with mean forwarding and one ancestral run only
  posterior_mean_vs_M,
  step_errors,
  snr_mismatch,
};

struct DenoiseBenchUnit {
  DenoiseBenchUnitKind kind = DenoiseBenchUnitKind::nmse_table;
  std::string predictor;                         // "oracle" or "network"
  int64_t T = 0;                                 // of the predictor's schedule
  std::vector<diffusion::Estimator> estimators;  // the tables' and the mismatch's
  bool references = false;  // tables: also the CME, LMMSE and LS; the mismatch: also the CME

  std::string stage() const;  // "oracle T=50: NMSE against the SNR"
};

struct DenoiseBenchPlan {
  std::string gmm;  // the prior (gmm.safetensors); empty: the one of the network's training data
  std::string checkpoint;  // a network trained on data of this GMM; empty: the oracle only
  std::vector<DenoiseBenchPart> experiments{DenoiseBenchPart::nmse, DenoiseBenchPart::steps,
                                            DenoiseBenchPart::resampling,
                                            DenoiseBenchPart::mismatch};
  int64_t samples = 64;                                     // clean test samples drawn from the GMM
  std::vector<double> snr = parse_number_list("-20:30:5");  // dB, of the NMSE table
  std::vector<int64_t> oracle_T{10, 50, 300, 1000};  // the oracle's T for the cheap estimators
  std::string schedule;    // the oracle's; empty: the checkpoint's, else paper_linear
  int64_t detail_T = 0;    // the costly estimators' T; 0: the checkpoint's, else kOracleDetailT
  int64_t mc_samples = 8;  // M of the Monte-Carlo posterior mean in the NMSE table
  std::vector<double> step_snr{-10, 0, 10};
  std::vector<int64_t> mc_M{1, 2, 4, 8, 16, 32, 64};  // run counts of the posterior mean vs M
  std::vector<double> mc_snr{-10, 0, 10};
  std::vector<double> mismatch = parse_number_list("-6:6:2");  // assumed minus true SNR, dB
  std::vector<double> mismatch_snr{-10, 0, 10};
  DenoiseEstimators estimators = DenoiseEstimators::all;
  // The predictors run (the network only with a checkpoint). Without the oracle the network's
  // table carries the CME, LMMSE and LS: e.g. a second network on the same test samples, whose
  // oracle rows another run with the same seed and samples already has.
  std::vector<DenoisePredictor> predictors{DenoisePredictor::oracle, DenoisePredictor::network};
  // Test images shown denoised at every SNR of the NMSE table (denoised.png), when the network
  // was trained on images; 0: none.
  int64_t grid_images = 4;
  uint64_t seed = 0;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("gmm", plan.gmm);
    visit("checkpoint", plan.checkpoint);
    visit("experiments", plan.experiments);
    visit("samples", plan.samples);
    visit("snr", plan.snr);
    visit("T", plan.oracle_T);
    visit("schedule", plan.schedule);
    visit("detail_T", plan.detail_T);
    visit("mc_samples", plan.mc_samples);
    visit("step_snr", plan.step_snr);
    visit("mc_M", plan.mc_M);
    visit("mc_snr", plan.mc_snr);
    visit("mismatch", plan.mismatch);
    visit("mismatch_snr", plan.mismatch_snr);
    visit("estimators", plan.estimators);
    visit("predictors", plan.predictors);
    visit("grid_images", plan.grid_images);
    visit("seed", plan.seed);
  }

  // Throws PlanError naming the field (the files are checked when the run reads them).
  void validate() const;
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static DenoiseBenchPlan from_json(const nlohmann::json& json);  // validated

  bool runs(DenoiseBenchPart part) const;
  bool runs(DenoisePredictor predictor) const;
  // The oracle's T of the NMSE table: oracle_T, and the detailed T after them if not among them.
  std::vector<int64_t> table_T() const;
  // The work, in the order run() executes it. Needs the detailed T: a plan with a
  // checkpoint and detail_T 0 throws PlanError("detail_T"); read_inputs(plan).plan
  // has it from the checkpoint.
  std::vector<DenoiseBenchUnit> units() const;

 private:
  int64_t detailed_T() const;
};

// What a plan names, read and reconciled: the plan with what the network fixes filled in (its T
// as detail_T, its schedule, the GMM of its training data as gmm); the input plan is unchanged.
struct DenoiseBenchInputs {
  DenoiseBenchPlan plan;
  datasets::Gmm gmm;
  std::optional<diffusion::DpmCheckpoint> network;
  Shape network_shape;  // one sample as the network takes it
  datasets::TrainingData training_data;  // what the network was trained on (empty without one)
};

// Throws PlanError naming the field for a plan that does not fit its files (a network trained
// with another T than detail_T, a GMM of another dimension, no GMM), std::runtime_error for a
// file that cannot be read.
DenoiseBenchInputs read_inputs(const DenoiseBenchPlan& plan);

// Re-sampling off (mean forwarding) against on (one ancestral run) and the CME, per SNR: the
// NMSE table's entries at the detailed T, or those of the resampling tables.
struct ResamplingRow {
  std::string predictor;
  int64_t T = 0;
  double snr_db = 0, off = 0, on = 0, cme = 0;
};

struct DenoiseBenchResults {
  DenoiseBenchPlan plan;      // as given (the run's config)
  DenoiseBenchPlan resolved;  // reconciled with the checkpoint: as run
  int64_t dim = 0, components = 0;
  double power_per_entry = 0;  // of the GMM: 1 for normalised data, where SNR = 1 / sigma^2
  int64_t network_T = 0;       // 0: no network
  std::vector<diffusion::DenoiseBenchEntry> nmse;
  std::vector<diffusion::StepErrorEntry> steps;
  std::vector<diffusion::MonteCarloEntry> mc;
  std::vector<diffusion::MismatchEntry> mismatch;
  std::vector<ResamplingRow> resampling;
  // The denoised-image grid's: one image's shape [C, H, W] (empty: the data are not images, or
  // no grid), how the stored values map to pixels, and the clean images [grid_images, N].
  std::vector<int64_t> image_shape;
  datasets::Normalization normalization;
  std::vector<double> grid_truth;
  double seconds = 0;  // wall time of the run
};

// Executes resolved.units(), one progress unit each (begin() gets their number). Warnings (a GMM
// of the wrong power, SNRs outside the network's trained steps) go to progress.warn().
DenoiseBenchResults run(const DenoiseBenchPlan& plan, report::Progress& progress);

// Average power per entry of the GMM, (tr C + ||m||^2) / N with its mean m and covariance C.
double power_per_entry(const datasets::Gmm& gmm);

}  // namespace dpm::experiments
