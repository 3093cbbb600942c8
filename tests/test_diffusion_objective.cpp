#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include <nlohmann/json.hpp>

#include "autograd/gradcheck.hpp"
#include "autograd/io/safetensors.hpp"
#include "autograd/ops.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/forward_process.hpp"
#include "diffusion/objective.hpp"
#include "diffusion/prediction.hpp"
#include "nn/checkpoint.hpp"
#include "trainers/dpm_training.hpp"

namespace fs = std::filesystem;
using namespace dpm;
using namespace dpm::diffusion;

namespace {

constexpr PredictionTarget kAllTargets[] = {PredictionTarget::eps, PredictionTarget::x0,
                                            PredictionTarget::v};

// The exact eps* of the Gaussian prior x_0 ~ N(0, s^2 I): eps*(x_t, t) = sqrt(1 - abar_t) x_t /
// (abar_t s^2 + 1 - abar_t). A parameter-free NoiseModel, so it runs through the objective and
// (wrapped in a NetworkPredictor) through the bound evaluation.
class GaussianEpsModel : public nn::NoiseModel {
 public:
  GaussianEpsModel(Schedule schedule, double variance)
      : NoiseModel("GaussianEpsModel"), schedule_(std::move(schedule)), variance_(variance) {}

  Variable forward(const Variable& x, const std::vector<int64_t>& t) override {
    check_steps(x, t);
    std::vector<int64_t> dims(static_cast<size_t>(x.ndim()), 1);
    dims[0] = x.size(0);
    std::vector<float> gain;
    for (int64_t index : t) {
      const double abar = schedule_.abar(index + 1);
      gain.push_back(static_cast<float>(std::sqrt(1 - abar) / (abar * variance_ + 1 - abar)));
    }
    return x * Variable(Tensor::from_vector(Shape(dims), gain));
  }
  nlohmann::json config() const override { return {{"arch", "gaussian_eps"}}; }

 private:
  Schedule schedule_;
  double variance_;
};

NetworkPredictor gaussian_predictor(const Schedule& schedule, double variance) {
  return NetworkPredictor(std::make_shared<GaussianEpsModel>(schedule, variance), schedule);
}

// Step t's term of the bound for the Gaussian prior, derived independently of the library from
// the Gaussians themselves. Per dimension, with z the noise of x_t = a x_0 + b z:
//   term = constant + (mean_coef x_0 + noise_coef z)^2 / (2 variance).
// t >= 2: KL(N(mu~, beta~) || N(mu_theta, sigma^2)) with mu~ = c0 x_0 + c1 x_t and
// mu_theta = m x_t (the DDPM mean with eps*); t = 1: -log N(x_0; m x_1, beta_1).
struct GaussianTerm {
  double constant = 0, mean_coef = 0, noise_coef = 0, variance = 1;

  double value(double x0, double z) const {
    const double r = mean_coef * x0 + noise_coef * z;
    return constant + r * r / (2 * variance);
  }
  double expected(double x0) const {
    const double m = mean_coef * x0;
    return constant + (m * m + noise_coef * noise_coef) / (2 * variance);
  }
  // Of value(x0, z) over z ~ N(0, 1): Var((m + s z)^2) = 2 s^4 + 4 m^2 s^2.
  double noise_variance(double x0) const {
    const double m = mean_coef * x0, s2 = noise_coef * noise_coef;
    return (2 * s2 * s2 + 4 * m * m * s2) / (4 * variance * variance);
  }
};

GaussianTerm gaussian_term(const Schedule& schedule, int64_t t, double s2, bool beta_tilde) {
  const double beta = schedule.beta(t), alpha = 1 - beta, abar = schedule.abar(t);
  const double abar_prev = schedule.abar(t - 1);
  const double a = std::sqrt(abar), b = std::sqrt(1 - abar), v = abar * s2 + 1 - abar;
  // mu_theta = (x_t - beta / b * eps*) / sqrt(alpha) with eps* = b x_t / v.
  const double m = (1 - beta / v) / std::sqrt(alpha);
  if (t == 1) return {0.5 * std::log(2 * std::numbers::pi * beta), 1 - m * a, -m * b, beta};
  const double c0 = std::sqrt(abar_prev) * beta / (1 - abar);
  const double c1 = std::sqrt(alpha) * (1 - abar_prev) / (1 - abar);
  const double posterior = beta * (1 - abar_prev) / (1 - abar);
  const double var = beta_tilde ? posterior : beta;
  return {0.5 * std::log(var / posterior) + posterior / (2 * var) - 0.5, c0 + (c1 - m) * a,
          (c1 - m) * b, var};
}

double gaussian_prior_term(const Schedule& schedule, double x0) {
  const double abar = schedule.abar(schedule.T());
  return 0.5 * (abar * x0 * x0 - abar - std::log(1 - abar));
}

double gaussian_nll(double x0, double s2) {
  return 0.5 * std::log(2 * std::numbers::pi * s2) + x0 * x0 / (2 * s2);
}

// The exact expected bound (nats/dim) for the x_0 of a dataset, and its noise standard error
// for one noise draw per sample and step.
struct AnalyticBound {
  double bound = 0, std_error = 0, nll = 0;
  std::vector<double> per_step, per_step_error;
};

AnalyticBound analytic_bound(const Schedule& schedule, const std::vector<float>& x0,
                             int64_t samples, double s2, bool beta_tilde) {
  const int64_t T = schedule.T();
  const double elements = static_cast<double>(x0.size());
  const double dims = elements / static_cast<double>(samples);
  AnalyticBound r;
  r.per_step.assign(static_cast<size_t>(T) + 1, 0.0);
  r.per_step_error.assign(static_cast<size_t>(T) + 1, 0.0);
  double noise_variance = 0;
  for (float x : x0) {
    r.bound += gaussian_prior_term(schedule, x) / elements;
    r.nll += gaussian_nll(x, s2) / elements;
  }
  for (int64_t t = 1; t <= T; ++t) {
    GaussianTerm g = gaussian_term(schedule, t, s2, beta_tilde);
    double mean = 0, variance = 0;
    for (float x : x0) {
      mean += g.expected(x) / elements;
      variance += g.noise_variance(x);
    }
    // A sample's term is the mean over its dims; the per-step mean is over samples.
    variance /= dims * dims * static_cast<double>(samples) * static_cast<double>(samples);
    r.per_step[static_cast<size_t>(t)] = mean;
    r.per_step_error[static_cast<size_t>(t)] = std::sqrt(variance);
    r.bound += mean;
    noise_variance += variance;
  }
  r.std_error = std::sqrt(noise_variance);
  return r;
}

double population_gaussian_bound(const Schedule& schedule, double s2, bool beta_tilde) {
  const double abar = schedule.abar(schedule.T());
  double bound = 0.5 * (abar * s2 - abar - std::log(1 - abar));
  for (int64_t t = 1; t <= schedule.T(); ++t) {
    GaussianTerm g = gaussian_term(schedule, t, s2, beta_tilde);
    bound += g.constant +
             (g.mean_coef * g.mean_coef * s2 + g.noise_coef * g.noise_coef) / (2 * g.variance);
  }
  return bound;
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - y[i]));
  return worst;
}

std::shared_ptr<nn::NoiseModel> small_mlp(int64_t dim, uint64_t seed) {
  Rng rng(seed);
  return nn::make_noise_model(
      {{"arch", "mlp"}, {"dim", dim}, {"width", 16}, {"depth", 1}, {"time_embedding_size", 8}},
      rng);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("prediction conversions are identities on constructed x_t and round-trip",
          "[diffusion][prediction]") {
  const std::vector<double> abar = {0.1, 0.25, 0.5, 0.75, 0.9, 0.6};
  const int64_t B = static_cast<int64_t>(abar.size()), D = 5;
  Rng rng(3);
  Tensor x0 = randn({B, D}, rng), eps = randn({B, D}, rng);
  // x_t and v built by hand in double.
  Tensor x_t = Tensor::empty({B, D}), v = Tensor::empty({B, D});
  double scale = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < D; ++j) {
      const double a = std::sqrt(abar[static_cast<size_t>(i)]);
      const double s = std::sqrt(1 - abar[static_cast<size_t>(i)]);
      const double x = x0.at({i, j}), e = eps.at({i, j});
      x_t.at({i, j}) = static_cast<float>(a * x + s * e);
      v.at({i, j}) = static_cast<float>(a * e - s * x);
      scale = std::max({scale, std::fabs(x), std::fabs(e)});
    }
  const double tolerance = 1e-6 * scale;
  auto value_of = [&](PredictionTarget target) {
    return target == PredictionTarget::eps ? eps : target == PredictionTarget::x0 ? x0 : v;
  };
  for (PredictionTarget from : kAllTargets)
    for (PredictionTarget to : kAllTargets) {
      INFO(prediction_target_name(from) << " -> " << prediction_target_name(to));
      Tensor converted = convert_prediction(value_of(from), from, to, x_t, abar);
      CHECK(max_abs_difference(converted, value_of(to)) <= tolerance);
      Tensor back = convert_prediction(converted, to, from, x_t, abar);
      CHECK(max_abs_difference(back, value_of(from)) <= tolerance);
      if (from == to) CHECK(max_abs_difference(converted, value_of(from)) == 0);
    }
  // The regression targets.
  for (PredictionTarget target : kAllTargets)
    CHECK(max_abs_difference(target_value(target, x0, eps, abar), value_of(target)) <= tolerance);
  // Bad input is named.
  CHECK_THROWS_WITH(conversion_coefficients(PredictionTarget::eps, PredictionTarget::x0, 1.0),
                    Catch::Contains("abar must be in (0, 1)"));
  CHECK_THROWS_WITH(convert_prediction(eps, PredictionTarget::eps, PredictionTarget::x0, x_t,
                                       std::vector<double>{0.5}),
                    Catch::Contains("convert_prediction"));
  CHECK_THROWS_WITH(parse_prediction_target("epsilon"), Catch::Contains("eps, x0 or v"));
}

TEST_CASE("Variable conversions match the Tensor ones and are differentiable",
          "[diffusion][prediction]") {
  const std::vector<double> abar = {0.2, 0.7, 0.95};
  Rng rng(4);
  Tensor prediction = randn({3, 2, 2}, rng), x_t = randn({3, 2, 2}, rng);
  for (PredictionTarget from : kAllTargets)
    for (PredictionTarget to : kAllTargets) {
      INFO(prediction_target_name(from) << " -> " << prediction_target_name(to));
      Variable out = convert_prediction(Variable(prediction), from, to, Variable(x_t), abar);
      CHECK(max_abs_difference(out.data(), convert_prediction(prediction, from, to, x_t, abar)) <=
            1e-6);
      if (from == to) continue;
      GradcheckResult r = gradcheck(
          [&](const std::vector<Variable>& in) {
            return convert_prediction(in[0], from, to, in[1], abar);
          },
          {Variable(prediction, true), Variable(x_t, true)});
      INFO(r.report);
      CHECK(r.passed);
    }
}

TEST_CASE("q_sample has mean sqrt(abar) x0 and variance 1 - abar, steps are uniform",
          "[diffusion][forward]") {
  Schedule schedule = Schedule::paper_linear(50);
  const int64_t n = 40000, D = 3;
  const float x0_row[D] = {1.5f, -0.5f, 0.0f};
  Tensor x0 = Tensor::empty({n, D});
  std::vector<int64_t> steps(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < D; ++j) x0.at({i, j}) = x0_row[j];
    steps[static_cast<size_t>(i)] = i % 2 == 0 ? 5 : 40;  // two noise levels in one batch
  }
  Rng rng(5);
  Tensor x_t = q_sample(schedule, x0, steps, randn({n, D}, rng));
  for (int64_t t : {5, 40}) {
    const double abar = schedule.abar(t), half = static_cast<double>(n / 2);
    for (int64_t j = 0; j < D; ++j) {
      double sum = 0, sum_sq = 0;
      for (int64_t i = t == 5 ? 0 : 1; i < n; i += 2) {
        sum += x_t.at({i, j});
        sum_sq += static_cast<double>(x_t.at({i, j})) * x_t.at({i, j});
      }
      const double mean = sum / half, variance = sum_sq / half - mean * mean;
      INFO("t = " << t << ", dim " << j << ": mean " << mean << ", variance " << variance);
      CHECK(std::fabs(mean - std::sqrt(abar) * x0_row[j]) < 5 * std::sqrt((1 - abar) / half));
      CHECK(std::fabs(variance / (1 - abar) - 1) < 5 * std::sqrt(2 / half));
    }
  }
  // Uniform steps in 1..T: every count within 5 standard deviations of n / T.
  std::vector<int64_t> drawn = sample_steps(schedule, n, rng), counts(51, 0);
  int64_t out_of_range = 0;
  for (int64_t t : drawn) {
    if (t < 1 || t > 50)
      ++out_of_range;
    else
      ++counts[static_cast<size_t>(t)];
  }
  REQUIRE(out_of_range == 0);
  const double expected = static_cast<double>(n) / 50;
  for (int64_t t = 1; t <= 50; ++t)
    CHECK(std::fabs(counts[static_cast<size_t>(t)] - expected) < 5 * std::sqrt(expected));
  // sample_forward is q_sample of its own draws.
  Rng a(9), b(9);
  ForwardSample f = sample_forward(schedule, x0.narrow(0, 0, 8), a);
  std::vector<int64_t> same_steps = sample_steps(schedule, 8, b);
  CHECK(f.steps == same_steps);
  CHECK(max_abs_difference(f.x_t, q_sample(schedule, x0.narrow(0, 0, 8), f.steps, f.eps)) == 0);
  CHECK_THROWS_WITH(q_sample(schedule, x0.narrow(0, 0, 2), {0, 1}, x0.narrow(0, 0, 2)),
                    Catch::Contains("q_sample: step 0 of sample 0 outside 1..50"));
}

TEST_CASE("NetworkPredictor: index t - 1, eval mode, chunks, conversion to eps",
          "[diffusion][prediction]") {
  Schedule schedule = Schedule::paper_linear(20);
  auto model = small_mlp(3, 11);
  model->train();
  Rng rng(12);
  Tensor x = randn({7, 3}, rng);
  const int64_t t = 6;
  Tensor direct;
  {
    NoGradGuard no_grad;
    model->eval();
    direct = model->forward(Variable(x), std::vector<int64_t>(7, t - 1)).data();
    model->train();
  }
  for (PredictionTarget target : kAllTargets) {
    NetworkPredictor whole(model, schedule, {target, 1024}), chunked(model, schedule, {target, 3});
    Tensor expected = convert_prediction(direct, target, PredictionTarget::eps, x,
                                         std::vector<double>(7, schedule.abar(t)));
    CHECK(max_abs_difference(whole.predict_eps(x, t), expected) <= 1e-6);
    CHECK(max_abs_difference(chunked.predict_eps(x, t), expected) <= 1e-6);
    CHECK(whole.evaluations() == 1);
    CHECK(model->is_training());  // the caller's mode is restored
  }
  NetworkPredictor p(model, schedule);
  CHECK_THROWS_WITH(p.predict_eps(x, 21), Catch::Contains("step 21 outside 1..20"));
}

TEST_CASE("the loss closure matches a hand computation for fixed t and eps",
          "[diffusion][objective]") {
  Schedule schedule = Schedule::paper_linear(10);
  auto model = small_mlp(3, 21);
  Rng rng(22);
  Tensor x0 = randn({4, 3}, rng), eps = randn({4, 3}, rng);
  const StepBatch steps{{1, 5, 10, 3}, {1, 1, 1, 1}};
  const int64_t B = 4, D = 3, T = schedule.T();
  // By hand: x_t, the network output at index t - 1, the targets, the bound's terms.
  Tensor x_t = Tensor::empty({B, D});
  for (int64_t i = 0; i < B; ++i) {
    const double abar = schedule.abar(steps.steps[static_cast<size_t>(i)]);
    for (int64_t j = 0; j < D; ++j)
      x_t.at({i, j}) = static_cast<float>(std::sqrt(abar) * x0.at({i, j}) +
                                          std::sqrt(1 - abar) * eps.at({i, j}));
  }
  Tensor out;
  {
    NoGradGuard no_grad;
    out = model->forward(Variable(x_t), {0, 4, 9, 2}).data();
  }
  for (PredictionTarget target : kAllTargets) {
    double simple = 0, vlb = 0;
    for (int64_t i = 0; i < B; ++i) {
      const int64_t t = steps.steps[static_cast<size_t>(i)];
      const double abar = schedule.abar(t), a = std::sqrt(abar), s = std::sqrt(1 - abar);
      const double beta = schedule.beta(t), alpha = 1 - beta;
      double squared_eps_error = 0;
      for (int64_t j = 0; j < D; ++j) {
        const double x = x0.at({i, j}), e = eps.at({i, j}), y = x_t.at({i, j});
        const double o = out.at({i, j});
        const double wanted = target == PredictionTarget::eps  ? e
                              : target == PredictionTarget::x0 ? x
                                                               : a * e - s * x;
        simple += (o - wanted) * (o - wanted) / (B * D);
        const double eps_theta = target == PredictionTarget::eps  ? o
                                 : target == PredictionTarget::x0 ? (y - a * o) / s
                                                                  : s * y + a * o;
        squared_eps_error += (eps_theta - e) * (eps_theta - e);
      }
      // sigma_t^2 = beta_t: DDPM's eps-form KL weight; the decoder at t = 1.
      const double weight = beta / (2 * alpha * (1 - abar));
      const double posterior = schedule.posterior_variance(t);
      const double constant = t == 1 ? 0.5 * std::log(2 * std::numbers::pi * beta)
                                     : 0.5 * (std::log(beta / posterior) + posterior / beta - 1);
      double prior = 0;
      const double abar_T = schedule.abar(T);
      for (int64_t j = 0; j < D; ++j)
        prior += 0.5 * (abar_T * x0.at({i, j}) * x0.at({i, j}) - abar_T - std::log(1 - abar_T));
      vlb += (T * (weight * squared_eps_error + D * constant) + prior) / (B * D);
    }
    INFO("target " << prediction_target_name(target) << ": simple " << simple << ", vlb " << vlb);
    ObjectiveOptions options;
    options.target = target;
    options.loss = LossKind::simple;
    CHECK(Objective(model, schedule, options).loss(x0, steps, eps).item() ==
          Approx(simple).epsilon(1e-5));
    options.loss = LossKind::vlb;
    Variable vlb_loss = Objective(model, schedule, options).loss(x0, steps, eps);
    CHECK(vlb_loss.item() == Approx(vlb).epsilon(1e-5));
    options.loss = LossKind::hybrid;
    CHECK(Objective(model, schedule, options).loss(x0, steps, eps).item() ==
          Approx(simple + 1e-3 * vlb).epsilon(1e-5));
    // The loss reaches the weights.
    model->zero_grad();
    vlb_loss.backward();
    double grad_norm = 0;
    for (const Variable& p : model->parameters())
      if (p.has_grad())
        for (float g : p.grad().to_vector()) grad_norm += static_cast<double>(g) * g;
    CHECK(grad_norm > 0);
  }
  ObjectiveOptions bad;
  bad.importance_sampling = true;
  CHECK_THROWS_WITH(Objective(model, schedule, bad),
                    Catch::Contains("'importance_sampling' needs loss \"vlb\""));
  CHECK_THROWS_WITH(ObjectiveOptions::from_json({{"loss", "l1"}}), Catch::Contains("field 'loss'"));
  CHECK_THROWS_WITH(ObjectiveOptions::from_json({{"lambda", 1}}),
                    Catch::Contains("unknown field 'lambda'"));
  ObjectiveOptions custom;
  custom.loss = LossKind::vlb;
  custom.target = PredictionTarget::v;
  custom.reverse_variance = ReverseVariance::beta_tilde;
  custom.importance_sampling = true;
  CHECK(ObjectiveOptions::from_json(custom.to_json()).to_json() == custom.to_json());
}

TEST_CASE("a step range: the simple loss draws only first_step..last_step",
          "[diffusion][objective]") {
  Schedule schedule = Schedule::paper_linear(50);
  auto model = small_mlp(3, 23);
  Rng data(24);
  Tensor x0 = randn({64, 3}, data);
  ObjectiveOptions options;
  options.target = PredictionTarget::v;
  options.first_step = 11;
  options.last_step = 20;
  // loss(x0, rng) is loss() of its own draws: steps uniform in 11..20, then the noise.
  Rng a(25), b(25);
  const Variable drawn = Objective(model, schedule, options).loss(x0, a);
  StepBatch steps{sample_steps(64, b, 11, 20), std::vector<double>(64, 1.0)};
  const Tensor eps = randn(x0.shape(), b);
  CHECK(Objective(model, schedule, options).loss(x0, steps, eps).item() == drawn.item());
  // sample_steps over a range: in range, every step drawn about equally often.
  Rng c(26);
  std::vector<int64_t> counts(21, 0);
  const int64_t n = 20000;
  for (int64_t t : sample_steps(n, c, 11, 20)) {
    REQUIRE(t >= 11);
    REQUIRE(t <= 20);
    ++counts[static_cast<size_t>(t)];
  }
  for (int64_t t = 11; t <= 20; ++t)
    CHECK(std::fabs(counts[static_cast<size_t>(t)] - n / 10.0) < 5 * std::sqrt(n / 10.0));
  CHECK_THROWS_WITH(sample_steps(4, c, 5, 4), Catch::Contains("1 <= first <= last"));
  // JSON round trip; the defaults (1, 0 = T) are the whole range.
  CHECK(ObjectiveOptions::from_json(options.to_json()).to_json() == options.to_json());
  CHECK(ObjectiveOptions{}.last_step_for(50) == 50);
  // Bad ranges name their field.
  CHECK_THROWS_WITH(ObjectiveOptions::from_json({{"first_step", 0}}),
                    Catch::Contains("'first_step'"));
  CHECK_THROWS_WITH(ObjectiveOptions::from_json({{"first_step", 8}, {"last_step", 7}}),
                    Catch::Contains("'last_step'"));
  CHECK_THROWS_WITH(ObjectiveOptions::from_json({{"loss", "vlb"}, {"last_step", 7}}),
                    Catch::Contains("needs loss \"simple\""));
  options.last_step = 51;
  CHECK_THROWS_WITH(Objective(model, schedule, options),
                    Catch::Contains("'last_step'") && Catch::Contains("T = 50"));
}

TEST_CASE("Gaussian prior: each term equals the Gaussian KL for given x0 and noise",
          "[diffusion][bound]") {
  Schedule schedule = Schedule::paper_linear(100);
  const int64_t B = 16, D = 2;
  Rng rng(31);
  for (double s : {0.5, 2.0})
    for (bool beta_tilde : {false, true}) {
      Tensor x0 = randn({B, D}, rng, 0.0f, static_cast<float>(s)), eps = randn({B, D}, rng);
      NetworkPredictor predictor = gaussian_predictor(schedule, s * s);
      const ReverseVariance variance =
          beta_tilde ? ReverseVariance::beta_tilde : ReverseVariance::beta;
      double worst = 0;
      for (int64_t t : {1, 2, 3, 10, 50, 99, 100}) {
        std::vector<double> terms = vlb_terms(predictor, schedule, x0, t, eps, variance);
        GaussianTerm g = gaussian_term(schedule, t, s * s, beta_tilde);
        for (int64_t i = 0; i < B; ++i) {
          double expected = 0;
          for (int64_t j = 0; j < D; ++j) expected += g.value(x0.at({i, j}), eps.at({i, j})) / D;
          const double error = std::fabs(terms[static_cast<size_t>(i)] - expected);
          worst = std::max(worst, error / (1e-6 + std::fabs(expected)));
        }
      }
      INFO("s = " << s << ", beta_tilde " << beta_tilde << ": worst relative error " << worst);
      CHECK(worst < 2e-5);
      // L_T.
      std::vector<double> prior = prior_terms(schedule, x0);
      for (int64_t i = 0; i < B; ++i) {
        double expected = 0;
        for (int64_t j = 0; j < D; ++j)
          expected += gaussian_prior_term(schedule, x0.at({i, j})) / D;
        CHECK(prior[static_cast<size_t>(i)] == Approx(expected).epsilon(1e-9));
      }
    }
}

TEST_CASE("Gaussian prior: the bound matches its closed form and is above the NLL",
          "[diffusion][bound]") {
  const int64_t n = 4000, D = 2;
  Schedule schedule = Schedule::paper_linear(100);
  for (double s : {0.5, 1.0, 2.0})
    for (bool beta_tilde : {false, true}) {
      Rng rng(41);
      Tensor data = randn({n, D}, rng, 0.0f, static_cast<float>(s));
      NetworkPredictor predictor = gaussian_predictor(schedule, s * s);
      BoundOptions options;
      options.reverse_variance = beta_tilde ? ReverseVariance::beta_tilde : ReverseVariance::beta;
      int64_t progress_calls = 0, progress_total = 0;
      options.progress = [&](int64_t done, int64_t total) {
        progress_calls = done;
        progress_total = total;
      };
      BoundResult code = evaluate_bound(predictor, schedule, data, options);
      AnalyticBound exact = analytic_bound(schedule, data.to_vector(), n, s * s, beta_tilde);
      INFO("s = " << s << ", beta_tilde " << beta_tilde << ": bound " << code.bound << " +- "
                  << exact.std_error << ", closed form " << exact.bound << ", NLL " << exact.nll);
      CHECK(progress_calls == 4 * 100);
      CHECK(progress_total == 4 * 100);
      CHECK(code.samples == n);
      CHECK(code.dims == D);
      // (a) every term against its closed-form expectation, within 5 noise standard errors.
      int64_t outside = 0;
      for (int64_t t = 1; t <= 100; ++t) {
        const double error = std::fabs(code.per_step[static_cast<size_t>(t)] -
                                       exact.per_step[static_cast<size_t>(t)]);
        if (error > 5 * exact.per_step_error[static_cast<size_t>(t)] + 1e-6) {
          ++outside;
          UNSCOPED_INFO("t = " << t << ": " << code.per_step[static_cast<size_t>(t)] << " vs "
                               << exact.per_step[static_cast<size_t>(t)] << " +- "
                               << exact.per_step_error[static_cast<size_t>(t)]);
        }
      }
      CHECK(outside == 0);
      CHECK(code.bound == Approx(code.prior + code.transitions + code.decoder));
      CHECK(code.decoder == code.per_step[1]);
      CHECK(std::fabs(code.bound - exact.bound) < 5 * exact.std_error);
      // (b) the bound is above the exact NLL: exactly for the closed form (on these samples and
      // for the population), and within noise for the estimate.
      CHECK(exact.bound >= exact.nll);
      const double population = population_gaussian_bound(schedule, s * s, beta_tilde);
      const double population_nll = 0.5 * std::log(2 * std::numbers::pi * s * s) + 0.5;
      CHECK(population >= population_nll - 1e-12);
      CHECK(code.bound > exact.nll - 5 * exact.std_error);
      // With s = 1 and sigma_t^2 = beta_t the reverse chain is the exact reverse of q: no gap.
      if (s == 1.0 && !beta_tilde) CHECK(std::fabs(population - population_nll) < 1e-10);
    }
}

TEST_CASE("Gaussian prior: with T = 1000 the bound approaches the NLL", "[diffusion][bound]") {
  const double s = 0.5, s2 = s * s;
  const double nll = 0.5 * std::log(2 * std::numbers::pi * s2) + 0.5;
  // The closed-form gap shrinks roughly like 1 / T (sigma_t^2 = beta_t).
  double previous_gap = 1e9;
  for (int64_t T : {10, 100, 1000}) {
    const double gap = population_gaussian_bound(Schedule::paper_linear(T), s2, false) - nll;
    WARN("Gaussian prior s = 0.5, paper-linear T = " << T << ": closed-form bound - NLL = " << gap
                                                     << " nats/dim");
    CHECK(gap > 0);
    CHECK(gap < previous_gap / 5);
    previous_gap = gap;
  }
  CHECK(previous_gap < 1e-3);
  // The estimate at T = 1000 agrees with the closed form.
  Schedule schedule = Schedule::paper_linear(1000);
  const int64_t n = 4000, D = 2;
  Rng rng(51);
  Tensor data = randn({n, D}, rng, 0.0f, static_cast<float>(s));
  NetworkPredictor predictor = gaussian_predictor(schedule, s2);
  BoundResult code = evaluate_bound(predictor, schedule, data);
  AnalyticBound exact = analytic_bound(schedule, data.to_vector(), n, s2, false);
  WARN("T = 1000 estimate: bound - NLL = " << code.bound - exact.nll << " +- " << exact.std_error
                                           << " (closed form on these samples "
                                           << exact.bound - exact.nll << ")");
  CHECK(std::fabs(code.bound - exact.bound) < 5 * exact.std_error);
  CHECK(exact.bound - exact.nll < 1e-3);
  CHECK(exact.bound >= exact.nll);
}

TEST_CASE("GMM prior: the bound is above the exact NLL", "[diffusion][bound]") {
  Rng rng(61);
  datasets::Gmm raw = datasets::make_random_gmm(rng, 4, 3);
  datasets::Normalization norm = datasets::Normalization::fit(raw.sample(4000, rng));
  datasets::Gmm gmm = norm.apply(raw);
  Tensor data = norm.apply(raw.sample(3000, rng));
  const double nll = gmm.nll_per_dim(data);
  // A fixed predictor: the exact eps of N(0, I), so with sigma_t^2 = beta_t the model is
  // N(0, I) exactly and the bound is the cross-entropy of the data under N(0, I).
  Schedule schedule = Schedule::paper_linear(100);
  NetworkPredictor predictor = gaussian_predictor(schedule, 1.0);
  double cross_entropy = 0;
  for (float x : data.to_vector())
    cross_entropy += gaussian_nll(x, 1.0) / static_cast<double>(data.numel());
  for (ReverseVariance variance : {ReverseVariance::beta, ReverseVariance::beta_tilde}) {
    BoundOptions options;
    options.reverse_variance = variance;
    BoundResult code = evaluate_bound(predictor, schedule, data, options);
    WARN("GMM N = 4, K = 3, sigma^2 = "
         << reverse_variance_name(variance) << ": bound " << code.bound << " +- " << code.std_error
         << " nats/dim, exact NLL " << nll << ", N(0, I) cross-entropy " << cross_entropy);
    CHECK(code.bound > nll + 5 * code.std_error);
    if (variance == ReverseVariance::beta)
      CHECK(std::fabs(code.bound - cross_entropy) < 5 * code.std_error);
  }
}

TEST_CASE("importance sampling draws t in proportion to sqrt(E[L_t^2])",
          "[diffusion][importance]") {
  const int64_t T = 8;
  ImportanceStepSampler sampler(T, 0.0);
  CHECK_FALSE(sampler.warmed_up());
  // Step t's history: ten values whose root mean square is t (the last ten count).
  for (int64_t t = 1; t <= T; ++t) {
    for (int k = 0; k < 10; ++k) sampler.record({t}, {100.0});  // pushed out of the window
    for (int k = 0; k < 10; ++k)
      sampler.record({t}, {k % 2 == 0 ? static_cast<double>(t) : -static_cast<double>(t)});
  }
  REQUIRE(sampler.warmed_up());
  std::vector<double> p = sampler.probabilities();
  for (int64_t t = 1; t <= T; ++t)
    CHECK(p[static_cast<size_t>(t - 1)] == Approx(static_cast<double>(t) / 36).epsilon(1e-12));

  // Warm-up needs 10 values of every step; before it, sampling is uniform with weight 1.
  ImportanceStepSampler fresh(T, 0.001);
  for (int64_t t = 1; t <= T; ++t)
    for (int k = 0; k < (t == T ? 9 : 10); ++k) fresh.record({t}, {1.0});
  CHECK_FALSE(fresh.warmed_up());
  Rng rng(71);
  StepBatch uniform = fresh.sample(100, rng);
  for (double w : uniform.weights) CHECK(w == 1.0);
  fresh.record({T}, {3.0});
  CHECK(fresh.warmed_up());
  std::vector<double> mixed = fresh.probabilities();
  double rms_sum = 7 * 1.0 + std::sqrt((9 + 9.0) / 10);
  CHECK(mixed[0] == Approx(0.999 * 1.0 / rms_sum + 0.001 / T).epsilon(1e-12));

  // Frequencies and the estimator's weights.
  const int64_t draws = 200000;
  StepBatch batch = sampler.sample(draws, rng);
  std::vector<int64_t> counts(static_cast<size_t>(T), 0);
  double worst_weight_error = 0;
  for (size_t i = 0; i < batch.steps.size(); ++i) {
    const int64_t t = batch.steps[i];
    ++counts[static_cast<size_t>(t - 1)];
    const double weight = 1.0 / (T * p[static_cast<size_t>(t - 1)]);
    worst_weight_error = std::max(worst_weight_error, std::fabs(batch.weights[i] / weight - 1));
  }
  CHECK(worst_weight_error < 1e-12);
  for (int64_t t = 1; t <= T; ++t) {
    const double expected = draws * p[static_cast<size_t>(t - 1)];
    INFO("t = " << t << ": " << counts[static_cast<size_t>(t - 1)] << " draws, expected "
                << expected);
    CHECK(std::fabs(counts[static_cast<size_t>(t - 1)] - expected) <
          5 * std::sqrt(expected * (1 - p[static_cast<size_t>(t - 1)])));
  }
  // Unbiased: the mean of T w_t f(t) estimates sum_t f(t) for any function f.
  auto any_function = [](int64_t t) { return std::sin(static_cast<double>(t)) + 0.3 * t; };
  double full = 0, mean = 0, mean_sq = 0;
  for (int64_t t = 1; t <= T; ++t) full += any_function(t);
  for (size_t i = 0; i < batch.steps.size(); ++i) {
    const double estimate = T * batch.weights[i] * any_function(batch.steps[i]);
    mean += estimate / draws;
    mean_sq += estimate * estimate / draws;
  }
  const double std_error = std::sqrt((mean_sq - mean * mean) / draws);
  INFO("estimate " << mean << " +- " << std_error << ", sum " << full);
  CHECK(std::fabs(mean - full) < 5 * std_error);

  // The state round-trips exactly.
  ImportanceStepSampler restored(T, 0.0);
  restored.load_state_dict(sampler.state_dict());
  CHECK(restored.probabilities() == p);
  CHECK_THROWS_WITH(restored.load_state_dict({}), Catch::Contains("missing tensor 'history'"));
}

TEST_CASE("the vlb loss is an unbiased estimate of the bound, importance-sampled or not",
          "[diffusion][importance]") {
  Schedule schedule = Schedule::paper_linear(20);
  const double s = 0.7, s2 = s * s;
  const double bound = population_gaussian_bound(schedule, s2, false);
  for (bool importance : {false, true}) {
    ObjectiveOptions options;
    options.loss = LossKind::vlb;
    options.importance_sampling = importance;
    auto model = std::make_shared<GaussianEpsModel>(schedule, s2);
    model->train();
    Objective objective(model, schedule, options);
    Rng rng(81);
    const int64_t B = 64, D = 2;
    // Warm-up: 20 steps x 10 values need a few hundred samples.
    for (int k = 0; k < 20; ++k)
      objective.loss(randn({B, D}, rng, 0.0f, static_cast<float>(s)), rng);
    CHECK(objective.sampler().warmed_up() == importance);
    const int draws = 1500;
    double mean = 0, mean_sq = 0;
    for (int k = 0; k < draws; ++k) {
      const double value =
          objective.loss(randn({B, D}, rng, 0.0f, static_cast<float>(s)), rng).item();
      mean += value / draws;
      mean_sq += value * value / draws;
    }
    const double std_error = std::sqrt((mean_sq - mean * mean) / draws);
    INFO("importance " << importance << ": mean loss " << mean << " +- " << std_error << ", bound "
                       << bound);
    CHECK(std::fabs(mean - bound) < 5 * std_error);
    if (importance) {
      // The loss history has moved the distribution away from uniform.
      std::vector<double> p = objective.sampler().probabilities();
      CHECK(*std::max_element(p.begin(), p.end()) > 2.0 / 20);
    }
  }
}

TEST_CASE("train_dpm trains a small MLP, checkpoints rebuild it, configs round-trip",
          "[diffusion][training]") {
  // A 2-D two-mode GMM.
  datasets::Gmm gmm;
  gmm.dim = 2;
  gmm.components = 2;
  gmm.weights = {0.5, 0.5};
  gmm.means = {-1.0, -0.5, 1.0, 0.5};
  gmm.covariances = {0.05, 0, 0, 0.05, 0.05, 0, 0, 0.05};
  Rng rng(91);
  Tensor train_data = gmm.sample(4096, rng), val_data = gmm.sample(1024, rng);

  fs::path dir = fs::temp_directory_path() / "dpmlab_test_dpm_training";
  fs::remove_all(dir);
  train::DpmTrainingConfig config;
  config.model = {
      {"arch", "mlp"}, {"dim", 2}, {"width", 64}, {"depth", 2}, {"time_embedding_size", 16}};
  config.schedule = Schedule::paper_linear(50).to_json();
  config.optimizer.lr = 2e-3;
  config.trainer.max_steps = 300;
  config.trainer.min_epochs = 1000;
  config.trainer.log_every = 50;
  config.trainer.progress = false;
  config.trainer.out_dir = dir.string();
  config.init_seed = 7;

  // The validation loss of the initial weights, the same way the trainer measures it.
  double before = 0;
  {
    Rng init(config.init_seed);
    auto model = nn::make_noise_model(config.model, init);
    model->eval();
    Objective objective(model, Schedule::from_json(config.schedule), config.objective);
    NoGradGuard no_grad;
    Rng noise(5);
    for (int64_t begin = 0; begin < 1024; begin += 128)
      before += objective.loss(val_data.narrow(0, begin, 128).contiguous(), noise).item() / 8;
  }
  train::DpmTrainingOutput out = train::train_dpm(config, train_data, val_data);
  REQUIRE(out.result.best_val_loss);
  WARN("train_dpm: L_simple validation loss " << before << " -> " << *out.result.best_val_loss
                                              << " in " << out.result.steps << " steps, "
                                              << out.result.seconds << " s");
  CHECK(out.result.steps == 300);
  CHECK(*out.result.best_val_loss < 0.7 * before);

  // The checkpoint rebuilds model, schedule and parameterisation with no flags.
  REQUIRE(fs::exists(dir / "best.safetensors"));
  diffusion::DpmCheckpoint checkpoint = diffusion::load_dpm_checkpoint((dir / "best.safetensors").string());
  CHECK(checkpoint.model->config() == out.model->config());
  CHECK(checkpoint.schedule.to_json() == config.schedule);
  CHECK(checkpoint.schedule.beta(50) == out.schedule.beta(50));
  CHECK(checkpoint.objective.to_json() == config.objective.to_json());
  CHECK(checkpoint.model->arena().values().to_vector() == out.model->arena().values().to_vector());
  Tensor probe = val_data.narrow(0, 0, 16).contiguous();
  NetworkPredictor from_output(out.model, out.schedule);
  CHECK(max_abs_difference(diffusion::make_predictor(checkpoint)->predict_eps(probe, 17),
                           from_output.predict_eps(probe, 17)) == 0);

  // config.used.json is the config.
  std::ifstream used(dir / "config.used.json");
  REQUIRE(used);
  CHECK(nlohmann::json::parse(used) == config.to_json());

  // A plain model checkpoint lacks the schedule, and says so.
  nn::save_model((dir / "plain.safetensors").string(), *out.model);
  CHECK_THROWS_WITH(diffusion::load_dpm_checkpoint((dir / "plain.safetensors").string()),
                    Catch::Contains("dpmlab.schedule"));
  fs::remove_all(dir);
}

TEST_CASE("train_dpm with the importance-sampled vlb keeps the sampler in resume files",
          "[diffusion][training]") {
  Rng rng(92);
  Tensor data = randn({512, 2}, rng);
  fs::path dir = fs::temp_directory_path() / "dpmlab_test_dpm_training_vlb";
  fs::remove_all(dir);
  train::DpmTrainingConfig config;
  config.model = {
      {"arch", "mlp"}, {"dim", 2}, {"width", 16}, {"depth", 1}, {"time_embedding_size", 8}};
  config.schedule = Schedule::paper_linear(10).to_json();
  config.objective.loss = LossKind::vlb;
  config.objective.importance_sampling = true;
  config.trainer.batch_size = 64;
  config.trainer.max_steps = 20;
  config.trainer.progress = false;
  config.trainer.out_dir = dir.string();
  train::DpmTrainingOutput out = train::train_dpm(config, data, Tensor());
  CHECK(out.result.steps == 20);
  CHECK(out.objective->sampler().warmed_up());
  SafeTensors resume = read_safetensors((dir / "resume.safetensors").string());
  std::vector<float> history = resume.get("callback.importance_sampler.history").to_vector();
  CHECK(history == out.objective->sampler().state_dict()[0].second.to_vector());
  fs::remove_all(dir);
}

TEST_CASE("training configs round-trip through JSON and name bad fields", "[diffusion][training]") {
  train::DpmTrainingConfig config;
  CHECK(train::DpmTrainingConfig::from_json(config.to_json()).to_json() == config.to_json());
  CHECK(train::DpmTrainingConfig::from_json(nlohmann::json::object()).to_json() ==
        config.to_json());
  config.model = {{"arch", "unet1d"}};
  config.schedule = Schedule::cosine(100).to_json();
  config.objective.loss = LossKind::hybrid;
  config.objective.target = PredictionTarget::x0;
  config.optimizer.kind = train::OptimizerKind::adamw;
  config.optimizer.lr = 3e-4;
  config.optimizer.weight_decay = 0.01;
  config.lr_schedule = optim::LrScheduleOptions{};
  config.lr_schedule->kind = optim::LrScheduleKind::warmup_cosine;
  config.lr_schedule->base_lr = 3e-4;
  config.lr_schedule->warmup_steps = 10;
  config.lr_schedule->total_steps = 1000;
  config.trainer.ema_decay = 0.999;
  config.trainer.max_seconds = 3600;
  config.trainer.out_dir = "runs/x";
  config.init_seed = 12;
  config.resume_from = "runs/x/resume.safetensors";
  nlohmann::json j = config.to_json();
  CHECK(train::DpmTrainingConfig::from_json(j).to_json() == j);
  CHECK(train::DpmTrainingConfig::from_json(nlohmann::json::parse(j.dump())).to_json() == j);

  auto error = [](const nlohmann::json& bad) {
    return error_of([&] { train::DpmTrainingConfig::from_json(bad); });
  };
  CHECK_THAT(error({{"optimizer", {{"lr", -1}}}}),
             Catch::Contains("optimizer") && Catch::Contains("'lr'"));
  CHECK_THAT(error({{"optimizer", {{"kind", "sgd"}}}}), Catch::Contains("field 'kind'"));
  CHECK_THAT(error({{"training", {{"batch_sise", 3}}}}),
             Catch::Contains("training") && Catch::Contains("unknown field 'batch_sise'"));
  CHECK_THAT(error({{"training", {{"batch_size", 0}}}}), Catch::Contains("'batch_size'"));
  CHECK_THAT(error({{"training", {{"ema_decay", "high"}}}}), Catch::Contains("'ema_decay'"));
  CHECK_THAT(error({{"objective", {{"loss", "l2"}}}}),
             Catch::Contains("objective") && Catch::Contains("'loss'"));
  CHECK_THAT(error({{"schedule", {{"kind", "linear"}, {"T", 10}}}}),
             Catch::Contains("schedule") && Catch::Contains("linear"));
  CHECK_THAT(error({{"lr_schedule", {{"kind", "warmup_cosine"}}}}), Catch::Contains("lr_schedule"));
  CHECK_THAT(error({{"optimiser", {{"lr", 1e-3}}}}), Catch::Contains("unknown field 'optimiser'"));
  CHECK_THAT(error({{"model", 3}}), Catch::Contains("field 'model'"));

  // A bad model field surfaces from train_dpm, named.
  train::DpmTrainingConfig bad_model;
  bad_model.model = {{"arch", "mlp"}, {"dim", 2}, {"widht", 8}};
  Tensor data = Tensor::zeros({4, 2});
  CHECK_THROWS_WITH(train::train_dpm(bad_model, data, Tensor()),
                    Catch::Contains("model config") && Catch::Contains("'widht'"));
  // Data the model cannot take is named with its shape.
  train::DpmTrainingConfig mismatch;
  mismatch.model = {
      {"arch", "mlp"}, {"dim", 3}, {"width", 8}, {"depth", 1}, {"time_embedding_size", 8}};
  CHECK_THROWS_WITH(train::train_dpm(mismatch, data, Tensor()),
                    Catch::Contains("training data of shape [4, 2]"));
}
