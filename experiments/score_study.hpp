#pragma once
// Score estimation by gradient descent, measured (docs/score-study.md). A two-layer network
// (nn/two_layer.hpp) is trained by full-batch gradient descent (or SGD) on the denoising score
// matching risk over n fixed samples x0_i of a GMM, each with J fixed noise draws (t_ij, eps_ij):
// regression with noisy labels, the label eps being a noisy sample of eps*(x_t, t) =
// -sqrt(1 - abar_t) grad log p_t(x_t). Measured along every run, every `eval_every` iterations:
//   - the empirical risk and a held-out risk (fresh samples and draws: the early-stopping rule's
//     only input),
//   - the exact score error E_t E_{x_t} ||f(x_t, t) - eps*(x_t, t)||^2 / N with t uniform, from
//     the GMM's exact eps* (nn's output is eps; in score units this is the DSM-weighted error
//     (1 - abar_t) ||s_theta - grad log p_t||^2),
//   - on the width sweep, the same GD on the network linearised at its start (f_lin) and
//     ||f - f_lin||, and where it fits, kernel regression with the NTK (the GD limit of f_lin).
// Two sweeps: the sample size n at a fixed width (the error at the stopped iteration against n,
// fitted on log-log axes over the seeds) and the width m at a fixed n. The stopped network is
// also used in the one-step Tweedie denoiser (NMSE over the CME), which ties the score error to
// the denoising benchmark.
//
//   ScoreStudyPlan plan = ScoreStudyPlan::quick();  plan.validate();
//   const ScoreStudyResults results = run(plan, progress);
//   report::write(results, "runs/score-study");  // experiments/score_study_report.hpp
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/schedule.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/progress.hpp"
#include "nn/two_layer.hpp"

template <>
struct dpm::experiments::Choices<dpm::nn::TwoLayerActivation> {
  static constexpr std::array<std::pair<nn::TwoLayerActivation, const char*>, 2> values{
      {{nn::TwoLayerActivation::relu, "relu"}, {nn::TwoLayerActivation::silu, "silu"}}};
};

template <>
struct dpm::experiments::Choices<dpm::nn::TwoLayerInit> {
  static constexpr std::array<std::pair<nn::TwoLayerInit, const char*>, 2> values{
      {{nn::TwoLayerInit::symmetric, "symmetric"}, {nn::TwoLayerInit::gaussian, "gaussian"}}};
};

namespace dpm::experiments {

enum class ScoreSweep { samples, width };

// One training run: n samples, width m, the seed-th seed; the width sweep's runs also train f_lin.
struct ScoreStudyUnit {
  ScoreSweep sweep = ScoreSweep::samples;
  int64_t samples = 0;  // n
  int64_t width = 0;    // m
  int64_t seed = 0;     // 0 .. seeds - 1
  bool linearized = false;

  std::string stage() const;  // "n = 128, m = 1024, seed 0"
};

struct ScoreStudyPlan {
  std::string gmm;  // a GMM file (`dpmlab gmm make` / `gmm fit`); empty: the random GMM below
  int64_t dim = 4;          // N of the random GMM (the paper's construction, normalised)
  int64_t components = 8;   // K of the random GMM
  uint64_t gmm_seed = 0;    // its draw
  int64_t steps = 100;      // T of the paper's linear schedule
  std::vector<int64_t> samples{32, 64, 128, 256, 512, 1024};  // n of the sample-size sweep
  std::vector<int64_t> widths{64, 256, 1024, 4096};           // m of the width sweep
  int64_t base_samples = 128;  // n of the width sweep
  int64_t base_width = 1024;   // m of the sample-size sweep
  int64_t draws = 4;           // J noise draws (t, eps) per sample
  nn::TwoLayerActivation activation = nn::TwoLayerActivation::relu;
  // symmetric: GD starts from the zero function (nn/two_layer.hpp); gaussian: from a random one
  nn::TwoLayerInit init = nn::TwoLayerInit::symmetric;
  int64_t time_features = 4;  // E
  double lr = 1.0;
  int64_t iterations = 4000;
  int64_t eval_every = 20;
  int64_t batch = 0;        // 0: full-batch GD; else SGD on minibatches of this many rows
  double holdout = 0.25;    // held-out samples, as a fraction of n (at least 8)
  int64_t patience = 20;    // evaluations without a held-out improvement before the rule stops
  int64_t error_samples = 2048;  // fresh (x0, t, eps) the exact score error averages over
  int64_t kernel_max = 2048;     // kernel regression when n J N <= this
  int64_t seeds = 3;
  uint64_t seed = 0;
  std::vector<double> denoise_snr{-10, 0, 10};  // dB; empty: no denoising
  int64_t denoise_samples = 512;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("gmm", plan.gmm);
    visit("dim", plan.dim);
    visit("components", plan.components);
    visit("gmm_seed", plan.gmm_seed);
    visit("steps", plan.steps);
    visit("samples", plan.samples);
    visit("widths", plan.widths);
    visit("base_samples", plan.base_samples);
    visit("base_width", plan.base_width);
    visit("draws", plan.draws);
    visit("activation", plan.activation);
    visit("init", plan.init);
    visit("time_features", plan.time_features);
    visit("lr", plan.lr);
    visit("iterations", plan.iterations);
    visit("eval_every", plan.eval_every);
    visit("batch", plan.batch);
    visit("holdout", plan.holdout);
    visit("patience", plan.patience);
    visit("error_samples", plan.error_samples);
    visit("kernel_max", plan.kernel_max);
    visit("seeds", plan.seeds);
    visit("seed", plan.seed);
    visit("denoise_snr", plan.denoise_snr);
    visit("denoise_samples", plan.denoise_samples);
  }

  // A run of seconds for the tests: N = 2, T = 50, two sizes of each sweep, 2 seeds.
  static ScoreStudyPlan quick();
  void validate() const;  // throws PlanError naming the field
  nlohmann::json to_json() const { return plan_to_json(*this); }
  static ScoreStudyPlan from_json(const nlohmann::json& json);  // validated

  // Per seed: the sample-size sweep at base_width, then the width sweep at base_samples (with
  // f_lin); a run in both sweeps (n = base_samples, m = base_width) is listed once, in the
  // width sweep.
  std::vector<ScoreStudyUnit> units() const;
};

// One evaluation along a run.
struct ScorePoint {
  int64_t iteration = 0;
  double train_loss = 0, heldout_loss = 0, score_error = 0;
  // Width sweep only (NaN elsewhere): f_lin's empirical risk and exact score error, and the RMS
  // distance sqrt(mean ||f - f_lin||^2 / N) over the error set's inputs.
  double linear_train_loss = 0, linear_score_error = 0, distance = 0;
};

struct ScoreRun {
  ScoreStudyUnit unit;
  int64_t train_rows = 0, heldout_rows = 0;  // n J and its held-out counterpart
  std::vector<ScorePoint> curve{};
  // The rule: the best held-out evaluation when `patience` evaluations have not improved on it
  // (or at the end, stopped_by_rule false).
  int64_t stopped_iteration = 0;
  double stopped_error = 0;
  bool stopped_by_rule = false;
  int64_t best_iteration = 0;  // the evaluation of least exact score error (needs the oracle)
  double best_error = 0;
  double final_error = 0;
  double kernel_error = 0;  // NTK regression's exact score error; NaN when not computed
  int64_t kernel_rank = 0;  // of Theta(X, X) (interpolation when it is n J N); 0 when not computed
  // Tweedie with the stopped network, NMSE over the CME's, per denoise_snr.
  std::vector<double> denoise_over_cme{};
  double seconds = 0;
};

// A least-squares line log(y) = a + slope log(x) with the slope's 95% confidence interval
// (Student t with points - 2 degrees of freedom).
struct LogLogFit {
  int64_t points = 0;
  double slope = 0, intercept = 0, ci_low = 0, ci_high = 0;
};

struct ScoreStudyResults {
  ScoreStudyPlan plan;  // as given (the run's config)
  std::string gmm_source;  // the file, or "the paper's random GMM (seed 0, normalised)"
  int64_t dim = 0, components = 0, T = 0;
  // E ||eps - eps*||^2 / N over the error set: the DSM risk of eps* itself, the floor of every
  // held-out risk (the label noise).
  double label_noise = 0;
  std::vector<double> oracle_denoise_over_cme;  // Tweedie with eps*, per denoise_snr
  std::vector<ScoreRun> runs;  // in units() order
  LogLogFit samples_fit;  // stopped error against n (sample-size sweep, every seed)
  LogLogFit width_fit;    // final ||f - f_lin|| against m (width sweep, every seed)
  double seconds = 0;
};

// Noisy inputs x_t [rows, N] at 0-based step indices (as networks take them; t = index + 1),
// with a label per row: the drawn eps, or eps*.
struct DsmSet {
  Tensor x;
  std::vector<int64_t> steps;
  std::vector<double> labels;  // [rows, N]
};

// n samples of the GMM, each with `draws` draws t ~ U{1..T}, eps ~ N(0, I) (with `stratified`,
// t = 1 + (row mod T) instead, so that every step is equally represented); labels: eps.
DsmSet draw_dsm_set(const datasets::Gmm& gmm, const diffusion::Schedule& schedule, int64_t n,
                    int64_t draws, bool stratified, Rng rng);
// eps* at every row of the set, the rows of one step in one call. [rows, N]
std::vector<double> exact_eps(const diffusion::GmmOracle& oracle, const DsmSet& set);

// Executes plan.units(), one progress unit each. Throws PlanError("gmm", ...) for a GMM file
// that cannot be used.
ScoreStudyResults run(const ScoreStudyPlan& plan, report::Progress& progress);

// The mean squared entry of prediction - target, both [rows, N]: the exact score error against
// eps*, the DSM risk against the drawn eps.
double mean_squared_error(const std::vector<double>& prediction, const std::vector<double>& target);

// The fit over (x, y) pairs, y > 0; points < 3 give NaN bounds.
LogLogFit fit_log_log(const std::vector<std::pair<double, double>>& xy);

}  // namespace dpm::experiments
