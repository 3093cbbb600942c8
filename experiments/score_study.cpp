#include "experiments/score_study.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#include "autograd/ops.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/denoiser.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/arena.hpp"
#include "nn/optim/sgd.hpp"
#include "nn/two_layer_linearization.hpp"

namespace dpm::experiments {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> network_output(nn::TwoLayerNet& net, const DsmSet& set) {
  NoGradGuard no_grad;
  const Tensor out = net.forward(Variable(set.x), set.steps).data();
  return std::vector<double>(out.data(), out.data() + out.numel());
}

// The study's fixed parts: the prior, its oracle, the error set, the denoising data.
struct StudySetup {
  datasets::Gmm gmm{};
  std::string source{};
  diffusion::Schedule schedule;
  std::unique_ptr<diffusion::GmmOracle> oracle{};
  DsmSet errors{};  // labels: eps*
  double label_noise = 0;
  Tensor clean{};                  // [D, N], the denoising test samples
  std::vector<Tensor> noisy{};     // per denoise_snr
  std::vector<double> cme_nmse{};  // per denoise_snr
};

datasets::Gmm study_gmm(const ScoreStudyPlan& plan, std::string& source) {
  if (!plan.gmm.empty()) {
    source = plan.gmm;
    try {
      return datasets::load_gmm(plan.gmm);
    } catch (const std::exception& e) {
      throw PlanError("gmm", e.what());
    }
  }
  Rng rng(plan.gmm_seed);
  const datasets::Gmm raw = datasets::make_random_gmm(rng, plan.dim, plan.components);
  // The GMM protocol's normalisation, from the mixture's exact moments.
  datasets::Normalization normalization;
  normalization.mean = raw.mixture_mean();
  const std::vector<double> covariance = raw.mixture_covariance();
  double trace = 0;
  for (int64_t i = 0; i < raw.dim; ++i) trace += covariance[i * raw.dim + i];
  normalization.scale = std::sqrt(trace / static_cast<double>(raw.dim));
  source = "the paper's random GMM (seed " + std::to_string(plan.gmm_seed) + ", normalised)";
  return normalization.apply(raw);
}

StudySetup make_setup(const ScoreStudyPlan& plan) {
  StudySetup setup{.schedule = diffusion::Schedule::paper_linear(plan.steps)};
  setup.gmm = study_gmm(plan, setup.source);
  setup.oracle = std::make_unique<diffusion::GmmOracle>(setup.gmm, setup.schedule);
  const Rng rng = Rng(plan.seed).split(1);
  setup.errors = draw_dsm_set(setup.gmm, setup.schedule, plan.error_samples, 1, true, rng.split(1));
  const std::vector<double> eps = setup.errors.labels;
  setup.errors.labels = exact_eps(*setup.oracle, setup.errors);
  setup.label_noise = mean_squared_error(eps, setup.errors.labels);
  if (!plan.denoise_snr.empty()) {
    Rng denoise_rng = rng.split(2);
    setup.clean = setup.gmm.sample(plan.denoise_samples, denoise_rng);
    for (double snr_db : plan.denoise_snr) {
      const double sigma = std::sqrt(datasets::snr_db_to_sigma2(snr_db));
      Tensor y = randn(setup.clean.shape(), denoise_rng);
      for (int64_t i = 0; i < y.numel(); ++i)
        y.data()[i] = setup.clean.data()[i] + static_cast<float>(sigma) * y.data()[i];
      setup.cme_nmse.push_back(
          datasets::nmse(setup.clean, setup.gmm.cme(y, datasets::snr_db_to_sigma2(snr_db))));
      setup.noisy.push_back(std::move(y));
    }
  }
  return setup;
}

// One-step Tweedie with `predictor`, NMSE over the CME's, per SNR.
std::vector<double> tweedie_over_cme(const StudySetup& setup, const ScoreStudyPlan& plan,
                                     diffusion::NoisePredictor& predictor) {
  std::vector<double> ratios;
  diffusion::Estimator tweedie;
  tweedie.kind = diffusion::EstimatorKind::tweedie;
  Rng unused(0);
  for (size_t i = 0; i < setup.noisy.size(); ++i) {
    const diffusion::Denoised d = diffusion::denoise(
        tweedie, diffusion::DoubleBatch::from_tensor(setup.noisy[i]),
        1.0 / datasets::snr_db_to_sigma2(plan.denoise_snr[i]), predictor, setup.schedule, unused);
    ratios.push_back(datasets::nmse(setup.clean, d.x_hat.to_tensor()) / setup.cme_nmse[i]);
  }
  return ratios;
}

Tensor float_labels(const DsmSet& set) {
  Tensor labels = Tensor::empty(set.x.shape());
  std::copy(set.labels.begin(), set.labels.end(), labels.data());
  return labels;
}

// The rule's state along a run.
struct StoppingRule {
  int64_t patience;
  double best_heldout = std::numeric_limits<double>::infinity();
  int64_t best_index = -1, since_best = 0;
  bool stopped = false;

  // Returns true when this evaluation is the rule's new best (and the rule still runs).
  bool observe(double heldout, int64_t index) {
    if (stopped) return false;
    if (heldout < best_heldout) {
      best_heldout = heldout;
      best_index = index;
      since_best = 0;
      return true;
    }
    stopped = ++since_best >= patience;
    return false;
  }
};

// The width sweep's linearised twin of a run: f_lin trained by the same GD from the same start.
struct LinearTwin {
  LinearTwin(const nn::TwoLayerNet& net, const DsmSet& train, const DsmSet& errors)
      : model(net),
        errors(model.inputs(net.inputs(errors.x, errors.steps))),
        descent(model, model.inputs(net.inputs(train.x, train.steps)), train.labels) {}
  nn::TwoLayerLinearization model;
  nn::TwoLayerLinearization::Inputs errors;
  nn::LinearizedDescent descent;
};

// NTK regression's predictions on the error set, in chunks that keep the cross kernel near 16M
// entries.
std::vector<double> kernel_predictions(const LinearTwin& twin, const nn::TwoLayerNet& net,
                                       const DsmSet& train, const DsmSet& errors,
                                       int64_t& rank) {
  const nn::NtkRegression regression(twin.model,
                                     twin.model.inputs(net.inputs(train.x, train.steps)),
                                     train.labels);
  rank = regression.rank();
  const int64_t dim = net.options().dim, rows = errors.x.shape()[0];
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / (train.x.shape()[0] * dim * dim));
  const Tensor z = net.inputs(errors.x, errors.steps);
  std::vector<double> out;
  for (int64_t first = 0; first < rows; first += chunk) {
    const int64_t count = std::min(chunk, rows - first);
    const std::vector<double> part =
        regression.predict(twin.model.inputs(z.narrow(0, first, count).contiguous()));
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

ScorePoint evaluate(nn::TwoLayerNet& net, const DsmSet& train, const DsmSet& heldout,
                    const DsmSet& errors, const LinearTwin* twin, int64_t iteration) {
  ScorePoint point{iteration};
  point.train_loss = mean_squared_error(network_output(net, train), train.labels);
  point.heldout_loss = mean_squared_error(network_output(net, heldout), heldout.labels);
  const std::vector<double> f = network_output(net, errors);
  point.score_error = mean_squared_error(f, errors.labels);
  point.linear_train_loss = point.linear_score_error = point.distance = kNaN;
  if (twin) {
    const std::vector<double> f_lin = twin->model.predict(twin->errors, twin->descent.delta());
    point.linear_train_loss = twin->descent.loss();
    point.linear_score_error = mean_squared_error(f_lin, errors.labels);
    point.distance = std::sqrt(mean_squared_error(f, f_lin));
  }
  return point;
}

// One GD step on every row, or one SGD step on `batch` rows drawn without replacement.
void descend(nn::TwoLayerNet& net, optim::SGD& sgd, const DsmSet& train, const Tensor& labels,
             int64_t batch, Rng& batch_rng) {
  sgd.zero_grad();
  if (batch == 0) {
    mse_loss(net.forward(Variable(train.x), train.steps), Variable(labels)).backward();
  } else {
    const int64_t dim = net.options().dim;
    const std::vector<int64_t> order = batch_rng.permutation(train.x.shape()[0]);
    Tensor x = Tensor::empty({batch, dim}), y = Tensor::empty({batch, dim});
    std::vector<int64_t> steps(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) {
      std::copy_n(train.x.data() + order[i] * dim, dim, x.data() + i * dim);
      std::copy_n(labels.data() + order[i] * dim, dim, y.data() + i * dim);
      steps[i] = train.steps[order[i]];
    }
    mse_loss(net.forward(Variable(x), steps), Variable(y)).backward();
  }
  sgd.step();
}

// Where the rule stopped, the oracle-best and the final evaluation.
void summarise(ScoreRun& run, const StoppingRule& rule) {
  const std::vector<ScorePoint>& curve = run.curve;
  const auto best = std::min_element(curve.begin(), curve.end(), [](const auto& a, const auto& b) {
    return a.score_error < b.score_error;
  });
  run.best_iteration = best->iteration;
  run.best_error = best->score_error;
  run.final_error = curve.back().score_error;
  run.stopped_iteration = curve[rule.best_index].iteration;
  run.stopped_error = curve[rule.best_index].score_error;
  run.stopped_by_rule = rule.stopped;
}

ScoreRun run_unit(const ScoreStudyPlan& plan, const StudySetup& setup, const ScoreStudyUnit& unit,
                  report::Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const Rng rng = Rng(plan.seed).split(100 + static_cast<uint64_t>(unit.seed));
  const int64_t heldout_samples =
      std::max<int64_t>(8, std::llround(plan.holdout * static_cast<double>(unit.samples)));
  const auto n_stream = static_cast<uint64_t>(unit.samples);
  const DsmSet train = draw_dsm_set(setup.gmm, setup.schedule, unit.samples, plan.draws, false,
                                    rng.split(1).split(n_stream));
  const DsmSet heldout = draw_dsm_set(setup.gmm, setup.schedule, heldout_samples, plan.draws,
                                      false, rng.split(2).split(n_stream));
  const Tensor labels = float_labels(train);
  nn::TwoLayerOptions options;
  options.dim = setup.gmm.dim;
  options.width = unit.width;
  options.activation = plan.activation;
  options.init = plan.init;
  options.time_features = plan.time_features;
  options.steps = setup.schedule.T();
  Rng init_rng = rng.split(3), batch_rng = rng.split(4);
  auto net = std::make_shared<nn::TwoLayerNet>(options, init_rng);
  std::optional<LinearTwin> twin;
  if (unit.linearized) twin.emplace(*net, train, setup.errors);
  optim::SGDOptions sgd_options;
  sgd_options.lr = plan.lr;
  optim::SGD sgd(net->arena(), sgd_options);

  ScoreRun run{unit, train.x.shape()[0], heldout.x.shape()[0]};
  StoppingRule rule{plan.patience};
  Tensor stopped_weights = net->arena().values().clone();
  for (int64_t iteration = 0;; ++iteration) {
    if (iteration % plan.eval_every == 0 || iteration == plan.iterations) {
      run.curve.push_back(evaluate(*net, train, heldout, setup.errors, twin ? &*twin : nullptr,
                                   iteration));
      if (rule.observe(run.curve.back().heldout_loss, static_cast<int64_t>(run.curve.size()) - 1))
        stopped_weights = net->arena().values().clone();
      progress.status(unit.stage() + ": iteration " + std::to_string(iteration) + "/" +
                      std::to_string(plan.iterations));
    }
    if (iteration == plan.iterations) break;
    descend(*net, sgd, train, labels, plan.batch, batch_rng);
    if (twin) twin->descent.step(plan.lr);
  }
  summarise(run, rule);
  run.kernel_error = kNaN;
  if (twin && train.x.shape()[0] * options.dim <= plan.kernel_max)
    run.kernel_error = mean_squared_error(
        kernel_predictions(*twin, *net, train, setup.errors, run.kernel_rank), setup.errors.labels);
  if (!setup.noisy.empty()) {
    std::copy_n(stopped_weights.data(), stopped_weights.numel(), net->arena().values().data());
    diffusion::NetworkPredictor predictor(net, setup.schedule);
    run.denoise_over_cme = tweedie_over_cme(setup, plan, predictor);
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

// Progress shared by the threads that run units.
class LockedProgress final : public report::Progress {
 public:
  LockedProgress(report::Progress& inner, std::mutex& lock) : inner_(inner), lock_(lock) {}
  void begin(int64_t total_units) override { guarded([&] { inner_.begin(total_units); }); }
  void advance(const std::string& stage) override { guarded([&] { inner_.advance(stage); }); }
  void status(const std::string& text) override { guarded([&] { inner_.status(text); }); }
  void warn(const std::string& message) override { guarded([&] { inner_.warn(message); }); }
  void finish() override { guarded([&] { inner_.finish(); }); }

 private:
  template <typename F>
  void guarded(F&& f) {
    const std::lock_guard<std::mutex> hold(lock_);
    f();
  }
  report::Progress& inner_;
  std::mutex& lock_;
};

// The 97.5% quantile of Student's t with `df` degrees of freedom: a table to 30, the
// Cornish-Fisher expansion beyond (error < 1e-4).
double student_t_975(int64_t df) {
  static constexpr double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                     2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                     2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                     2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df <= 30) return table[df - 1];
  const double z = 1.959964, d = static_cast<double>(df);
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

}  // namespace

DsmSet draw_dsm_set(const datasets::Gmm& gmm, const diffusion::Schedule& schedule, int64_t n,
                    int64_t draws, bool stratified, Rng rng) {
  Rng sample_rng = rng.split(1), noise_rng = rng.split(2);
  const Tensor x0 = gmm.sample(n, sample_rng);
  const int64_t dim = gmm.dim, rows = n * draws;
  DsmSet set{Tensor::empty({rows, dim}), std::vector<int64_t>(static_cast<size_t>(rows)),
             std::vector<double>(static_cast<size_t>(rows * dim))};
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t t = stratified ? 1 + row % schedule.T() : noise_rng.integer(int64_t{1}, schedule.T());
    const double a = std::sqrt(schedule.abar(t)), s = std::sqrt(1.0 - schedule.abar(t));
    set.steps[row] = t - 1;
    const float* clean = x0.data() + (row / draws) * dim;
    for (int64_t j = 0; j < dim; ++j) {
      const double eps = noise_rng.normal();
      set.labels[row * dim + j] = eps;
      set.x.data()[row * dim + j] = static_cast<float>(a * clean[j] + s * eps);
    }
  }
  return set;
}

std::vector<double> exact_eps(const diffusion::GmmOracle& oracle, const DsmSet& set) {
  const int64_t dim = oracle.dim(), rows = set.x.shape()[0];
  std::vector<double> out(static_cast<size_t>(rows * dim));
  for (int64_t t = 1; t <= oracle.schedule().T(); ++t) {
    std::vector<int64_t> at_t;
    std::vector<double> x;
    for (int64_t row = 0; row < rows; ++row)
      if (set.steps[row] == t - 1) {
        at_t.push_back(row);
        x.insert(x.end(), set.x.data() + row * dim, set.x.data() + (row + 1) * dim);
      }
    if (at_t.empty()) continue;
    const std::vector<double> eps = oracle.eps(x, t);
    for (size_t i = 0; i < at_t.size(); ++i)
      std::copy_n(eps.data() + i * dim, dim, out.data() + at_t[i] * dim);
  }
  return out;
}

std::string ScoreStudyUnit::stage() const {
  return "n = " + std::to_string(samples) + ", m = " + std::to_string(width) + ", seed " +
         std::to_string(seed);
}

ScoreStudyPlan ScoreStudyPlan::quick() {
  ScoreStudyPlan plan;
  plan.dim = 2;
  plan.components = 4;
  plan.steps = 50;
  plan.samples = {16, 32};
  plan.widths = {64, 256};
  plan.base_samples = 16;
  plan.base_width = 64;
  plan.draws = 2;
  plan.iterations = 200;
  plan.eval_every = 10;
  plan.patience = 5;
  plan.error_samples = 256;
  plan.seeds = 2;
  plan.denoise_samples = 64;
  return plan;
}

void ScoreStudyPlan::validate() const {
  if (gmm.empty()) {
    require_range("dim", dim, 1, 4096);
    require_range("components", components, 1, 4096);
  }
  require_range("steps", steps, 2, 100'000);
  require_list("samples", samples, 1, 10'000'000);
  require_list("widths", widths, 1, 1'000'000);
  require_range("base_samples", base_samples, 1, 10'000'000);
  require_range("base_width", base_width, 1, 1'000'000);
  if (init == nn::TwoLayerInit::symmetric) {
    for (int64_t m : widths)
      if (m % 2 != 0) throw PlanError("widths", "the symmetric initialisation needs even widths");
    if (base_width % 2 != 0)
      throw PlanError("base_width", "the symmetric initialisation needs an even width");
  }
  require_range("draws", draws, 1, 1'000'000);
  require_range("time_features", time_features, 0, 1024);
  require_finite("lr", lr, 0, false);
  require_range("iterations", iterations, 1, 100'000'000);
  require_range("eval_every", eval_every, 1, 100'000'000);
  require_range("batch", batch, 0, 100'000'000);
  require_finite("holdout", holdout, 0, false, 10);
  require_range("patience", patience, 1, 100'000'000);
  require_range("error_samples", error_samples, 1, 100'000'000);
  require_range("kernel_max", kernel_max, 0, 100'000);
  require_range("seeds", seeds, 1, 1000);
  if (!denoise_snr.empty()) require_list("denoise_snr", denoise_snr);
  require_range("denoise_samples", denoise_samples, 1, 10'000'000);
  const int64_t smallest = std::min(*std::min_element(samples.begin(), samples.end()),
                                    base_samples);
  if (batch > smallest * draws)
    throw PlanError("batch", "is larger than the smallest training set (" +
                                 std::to_string(smallest * draws) + " rows = n x draws)");
}

ScoreStudyPlan ScoreStudyPlan::from_json(const nlohmann::json& json) {
  ScoreStudyPlan plan = plan_from_json<ScoreStudyPlan>(json);
  plan.validate();
  return plan;
}

std::vector<ScoreStudyUnit> ScoreStudyPlan::units() const {
  std::vector<ScoreStudyUnit> units;
  // f_lin follows full-batch GD only: SGD's minibatches are another trajectory.
  const bool linearized = batch == 0;
  for (int64_t s = 0; s < seeds; ++s) {
    for (int64_t n : samples)
      if (n != base_samples || std::find(widths.begin(), widths.end(), base_width) == widths.end())
        units.push_back({ScoreSweep::samples, n, base_width, s, false});
    for (int64_t m : widths) units.push_back({ScoreSweep::width, base_samples, m, s, linearized});
  }
  return units;
}

double mean_squared_error(const std::vector<double>& prediction, const std::vector<double>& target) {
  if (prediction.size() != target.size() || target.empty())
    throw std::invalid_argument("mean_squared_error: predictions and targets differ in size");
  double sum = 0;
  for (size_t i = 0; i < target.size(); ++i)
    sum += (prediction[i] - target[i]) * (prediction[i] - target[i]);
  return sum / static_cast<double>(target.size());
}

LogLogFit fit_log_log(const std::vector<std::pair<double, double>>& xy) {
  LogLogFit fit;
  fit.points = static_cast<int64_t>(xy.size());
  fit.slope = fit.intercept = fit.ci_low = fit.ci_high = kNaN;
  if (fit.points < 2) return fit;
  double mx = 0, my = 0;
  for (const auto& [x, y] : xy) {
    mx += std::log(x);
    my += std::log(y);
  }
  mx /= static_cast<double>(fit.points);
  my /= static_cast<double>(fit.points);
  double sxx = 0, sxy = 0;
  for (const auto& [x, y] : xy) {
    sxx += (std::log(x) - mx) * (std::log(x) - mx);
    sxy += (std::log(x) - mx) * (std::log(y) - my);
  }
  if (sxx == 0) return fit;
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  if (fit.points < 3) return fit;
  double residuals = 0;
  for (const auto& [x, y] : xy)
    residuals += std::pow(std::log(y) - fit.intercept - fit.slope * std::log(x), 2);
  const double se = std::sqrt(residuals / static_cast<double>(fit.points - 2) / sxx);
  const double half = student_t_975(fit.points - 2) * se;
  fit.ci_low = fit.slope - half;
  fit.ci_high = fit.slope + half;
  return fit;
}

ScoreStudyResults run(const ScoreStudyPlan& plan, report::Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  plan.validate();
  const StudySetup setup = make_setup(plan);
  ScoreStudyResults results;
  results.plan = plan;
  results.gmm_source = setup.source;
  results.dim = setup.gmm.dim;
  results.components = setup.gmm.components;
  results.T = setup.schedule.T();
  results.label_noise = setup.label_noise;
  if (!setup.noisy.empty())
    results.oracle_denoise_over_cme = tweedie_over_cme(setup, plan, *setup.oracle);
  const std::vector<ScoreStudyUnit> units = plan.units();
  progress.begin(static_cast<int64_t>(units.size()));
  // The runs are independent: one per thread, each serial inside (so its numbers do not depend
  // on the thread count); the progress line is shared under a lock.
  results.runs.resize(units.size());
  std::mutex progress_lock;
  LockedProgress locked(progress, progress_lock);
  parallel_for(static_cast<int64_t>(units.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      results.runs[i] = run_unit(plan, setup, units[i], locked);
      locked.advance(units[i].stage());
    }
  });
  std::vector<std::pair<double, double>> by_samples, by_width;
  for (const ScoreRun& r : results.runs) {
    const ScoreStudyUnit& unit = r.unit;
    if (unit.width == plan.base_width && std::find(plan.samples.begin(), plan.samples.end(),
                                                   unit.samples) != plan.samples.end())
      by_samples.emplace_back(static_cast<double>(unit.samples), r.stopped_error);
    if (unit.linearized)
      by_width.emplace_back(static_cast<double>(unit.width), r.curve.back().distance);
  }
  progress.finish();
  results.samples_fit = fit_log_log(by_samples);
  results.width_fit = fit_log_log(by_width);
  results.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return results;
}

}  // namespace dpm::experiments
