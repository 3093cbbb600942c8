#include "diffusion/objective.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "diffusion/forward_process.hpp"
#include "diffusion/per_sample.hpp"
#include "nn/config_reader.hpp"

namespace dpm::diffusion {
namespace {

constexpr LossKind kLossKinds[] = {LossKind::simple, LossKind::vlb, LossKind::hybrid};
constexpr ReverseVariance kVariances[] = {ReverseVariance::beta, ReverseVariance::beta_tilde};

template <typename Enum, size_t N>
Enum parse_name(const std::string& name, const Enum (&values)[N], const char* (*to_name)(Enum),
                const char* what) {
  std::string valid;
  for (Enum value : values) {
    if (name == to_name(value)) return value;
    valid += std::string(valid.empty() ? "" : ", ") + to_name(value);
  }
  throw std::invalid_argument(std::string("unknown ") + what + " '" + name + "' (expected " +
                              valid + ")");
}

template <typename Enum, size_t N>
std::vector<std::string> all_names(const Enum (&values)[N], const char* (*to_name)(Enum)) {
  std::vector<std::string> names;
  for (Enum value : values) names.emplace_back(to_name(value));
  return names;
}

int64_t sample_size(const Tensor& x0) {
  return x0.numel() / x0.size(0);
}

}  // namespace

const char* loss_kind_name(LossKind kind) {
  switch (kind) {
    case LossKind::simple:
      return "simple";
    case LossKind::vlb:
      return "vlb";
    case LossKind::hybrid:
      return "hybrid";
  }
  return "unknown";
}

LossKind parse_loss_kind(const std::string& name) {
  return parse_name(name, kLossKinds, loss_kind_name, "loss");
}

const char* reverse_variance_name(ReverseVariance variance) {
  switch (variance) {
    case ReverseVariance::beta:
      return "beta";
    case ReverseVariance::beta_tilde:
      return "beta_tilde";
  }
  return "unknown";
}

ReverseVariance parse_reverse_variance(const std::string& name) {
  return parse_name(name, kVariances, reverse_variance_name, "reverse variance");
}

void ObjectiveOptions::validate() const {
  if (importance_sampling && loss != LossKind::vlb)
    throw std::invalid_argument(
        std::string("objective: 'importance_sampling' needs loss \"vlb\", got loss \"") +
        loss_kind_name(loss) + "\"");
  if (!(importance_uniform_mix >= 0 && importance_uniform_mix < 1))
    throw std::invalid_argument("objective: 'importance_uniform_mix' must be in [0, 1), got " +
                                std::to_string(importance_uniform_mix));
  if (!(hybrid_lambda >= 0 && std::isfinite(hybrid_lambda)))
    throw std::invalid_argument("objective: 'hybrid_lambda' must be finite and >= 0, got " +
                                std::to_string(hybrid_lambda));
  if (first_step < 1)
    throw std::invalid_argument("objective: 'first_step' must be >= 1, got " +
                                std::to_string(first_step));
  if (last_step != 0 && last_step < first_step)
    throw std::invalid_argument("objective: 'last_step' must be 0 (T) or >= 'first_step' (" +
                                std::to_string(first_step) + "), got " + std::to_string(last_step));
  if ((first_step != 1 || last_step != 0) && loss != LossKind::simple)
    throw std::invalid_argument(
        std::string("objective: a step range ('first_step', 'last_step') needs loss \"simple\" "
                    "(the bound's estimate draws every step), got loss \"") +
        loss_kind_name(loss) + "\"");
}

int64_t ObjectiveOptions::last_step_for(int64_t T) const {
  if (last_step > T || first_step > T)
    throw std::invalid_argument(
        "objective: the step range " + std::to_string(first_step) + ".." +
        (last_step == 0 ? std::string("T") : std::to_string(last_step)) +
        " ('first_step', 'last_step') goes beyond the schedule's T = " + std::to_string(T));
  return last_step == 0 ? T : last_step;
}

nlohmann::json ObjectiveOptions::to_json() const {
  return {{"loss", loss_kind_name(loss)},
          {"target", prediction_target_name(target)},
          {"reverse_variance", reverse_variance_name(reverse_variance)},
          {"importance_sampling", importance_sampling},
          {"importance_uniform_mix", importance_uniform_mix},
          {"hybrid_lambda", hybrid_lambda},
          {"first_step", first_step},
          {"last_step", last_step}};
}

ObjectiveOptions ObjectiveOptions::from_json(const nlohmann::json& config) {
  nn::ConfigReader reader(config, "objective config");
  ObjectiveOptions o;
  o.loss = parse_loss_kind(
      reader.choice("loss", loss_kind_name(o.loss), all_names(kLossKinds, loss_kind_name)));
  o.target = parse_prediction_target(
      reader.choice("target", prediction_target_name(o.target), {"eps", "x0", "v"}));
  o.reverse_variance = parse_reverse_variance(
      reader.choice("reverse_variance", reverse_variance_name(o.reverse_variance),
                    all_names(kVariances, reverse_variance_name)));
  o.importance_sampling = reader.boolean("importance_sampling", o.importance_sampling);
  o.importance_uniform_mix =
      reader.number("importance_uniform_mix", o.importance_uniform_mix, 0.0, 0.999);
  o.hybrid_lambda = reader.number("hybrid_lambda", o.hybrid_lambda, 0.0);
  o.first_step = reader.integer("first_step", o.first_step);
  o.last_step = reader.integer("last_step", o.last_step, 0);
  reader.finish();
  o.validate();
  return o;
}

VlbCoefficients vlb_coefficients(const Schedule& schedule, int64_t t, ReverseVariance variance) {
  if (t < 1 || t > schedule.T())
    throw std::invalid_argument("vlb_coefficients: step " + std::to_string(t) + " outside 1.." +
                                std::to_string(schedule.T()));
  const double beta = schedule.beta(t), alpha = 1 - beta, abar = schedule.abar(t);
  VlbCoefficients c;
  double sigma2 = beta;
  if (t == 1) {
    c.constant = 0.5 * std::log(2 * std::numbers::pi * sigma2);
  } else {
    const double posterior = schedule.posterior_variance(t);
    if (variance == ReverseVariance::beta_tilde) sigma2 = posterior;
    c.constant = 0.5 * (std::log(sigma2 / posterior) + posterior / sigma2 - 1);
  }
  c.weight = beta * beta / (2 * sigma2 * alpha * (1 - abar));
  return c;
}

std::vector<double> prior_terms(const Schedule& schedule, const Tensor& x0) {
  batch_size_of(x0, "prior_terms", "x0");
  const double abar = schedule.abar(schedule.T());
  const double dims = static_cast<double>(sample_size(x0));
  std::vector<double> terms =
      squared_distance_per_sample(x0, Tensor::zeros(x0.shape()), "prior_terms");
  for (double& sq : terms) sq = 0.5 * (abar * sq / dims - abar - std::log(1 - abar));
  return terms;
}

std::vector<double> vlb_terms(NoisePredictor& predictor, const Schedule& schedule, const Tensor& x0,
                              int64_t t, const Tensor& eps, ReverseVariance variance) {
  const int64_t n = batch_size_of(x0, "vlb_terms", "x0");
  const VlbCoefficients c = vlb_coefficients(schedule, t, variance);
  Tensor x_t = q_sample(schedule, x0, std::vector<int64_t>(static_cast<size_t>(n), t), eps);
  Tensor eps_theta = predictor.predict_eps(x_t, t);
  std::vector<double> terms = squared_distance_per_sample(eps_theta, eps, "vlb_terms");
  const double dims = static_cast<double>(sample_size(x0));
  for (double& sq : terms) sq = c.weight * sq / dims + c.constant;
  return terms;
}

ImportanceStepSampler::ImportanceStepSampler(int64_t T, double uniform_mix)
    : T_(T),
      uniform_mix_(uniform_mix),
      history_(static_cast<size_t>(T * kHistory), 0.0f),
      filled_(static_cast<size_t>(T), 0),
      next_(static_cast<size_t>(T), 0) {
  if (T < 1)
    throw std::invalid_argument("ImportanceStepSampler: T must be >= 1, got " + std::to_string(T));
  if (!(uniform_mix >= 0 && uniform_mix < 1))
    throw std::invalid_argument("ImportanceStepSampler: uniform_mix must be in [0, 1), got " +
                                std::to_string(uniform_mix));
}

bool ImportanceStepSampler::warmed_up() const {
  return std::all_of(filled_.begin(), filled_.end(),
                     [](int64_t filled) { return filled == kHistory; });
}

std::vector<double> ImportanceStepSampler::probabilities() const {
  const double uniform = 1.0 / static_cast<double>(T_);
  std::vector<double> p(static_cast<size_t>(T_), uniform);
  if (!warmed_up()) return p;
  double total = 0;
  for (int64_t t = 0; t < T_; ++t) {
    double second_moment = 0;
    for (int64_t k = 0; k < kHistory; ++k) {
      const double value = history_[static_cast<size_t>(t * kHistory + k)];
      second_moment += value * value;
    }
    p[static_cast<size_t>(t)] = std::sqrt(second_moment / kHistory);
    total += p[static_cast<size_t>(t)];
  }
  if (!(total > 0) || !std::isfinite(total)) return std::vector<double>(p.size(), uniform);
  for (double& value : p) value = (1 - uniform_mix_) * value / total + uniform_mix_ * uniform;
  return p;
}

StepBatch ImportanceStepSampler::sample(int64_t n, Rng& rng) const {
  StepBatch batch;
  if (!warmed_up()) {
    batch.steps = std::vector<int64_t>(static_cast<size_t>(n));
    for (auto& t : batch.steps) t = rng.integer(int64_t{1}, T_);
    batch.weights.assign(static_cast<size_t>(n), 1.0);
    return batch;
  }
  const std::vector<double> p = probabilities();
  std::vector<double> cumulative(p.size());
  double running = 0;
  for (size_t t = 0; t < p.size(); ++t) cumulative[t] = running += p[t];
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.uniform() * running;
    const size_t index = std::min<size_t>(
        static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) -
                            cumulative.begin()),
        p.size() - 1);
    batch.steps.push_back(static_cast<int64_t>(index) + 1);
    batch.weights.push_back(1.0 / (static_cast<double>(T_) * p[index]));
  }
  return batch;
}

void ImportanceStepSampler::record(const std::vector<int64_t>& steps,
                                   const std::vector<double>& terms) {
  if (steps.size() != terms.size())
    throw std::invalid_argument("ImportanceStepSampler::record: " + std::to_string(steps.size()) +
                                " steps but " + std::to_string(terms.size()) + " terms");
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t t = steps[i];
    if (t < 1 || t > T_)
      throw std::invalid_argument("ImportanceStepSampler::record: step " + std::to_string(t) +
                                  " outside 1.." + std::to_string(T_));
    const size_t row = static_cast<size_t>(t - 1);
    history_[row * kHistory + static_cast<size_t>(next_[row])] = static_cast<float>(terms[i]);
    next_[row] = (next_[row] + 1) % kHistory;
    filled_[row] = std::min(filled_[row] + 1, kHistory);
  }
}

NamedTensors ImportanceStepSampler::state_dict() const {
  std::vector<float> filled(filled_.begin(), filled_.end()), next(next_.begin(), next_.end());
  return {{"history", Tensor::from_vector({T_, kHistory}, history_)},
          {"filled", Tensor::from_vector({T_}, filled)},
          {"next", Tensor::from_vector({T_}, next)}};
}

void ImportanceStepSampler::load_state_dict(const NamedTensors& state) {
  const std::vector<Tensor> given = match_state_dict("ImportanceStepSampler", state_dict(), state);
  std::vector<float> history = given[0].to_vector();
  std::vector<float> filled = given[1].to_vector(), next = given[2].to_vector();
  for (int64_t t = 0; t < T_; ++t) {
    const float f = filled[static_cast<size_t>(t)], x = next[static_cast<size_t>(t)];
    if (!(f >= 0 && f <= kHistory && x >= 0 && x < kHistory && f == std::floor(f) &&
          x == std::floor(x)))
      throw std::invalid_argument("ImportanceStepSampler: state of step " + std::to_string(t + 1) +
                                  " is out of range");
  }
  history_ = std::move(history);
  filled_.assign(filled.begin(), filled.end());
  next_.assign(next.begin(), next.end());
}

Objective::Objective(std::shared_ptr<nn::NoiseModel> model, Schedule schedule,
                     ObjectiveOptions options)
    : model_(std::move(model)),
      schedule_(std::move(schedule)),
      options_(options),
      sampler_(schedule_.T(), options.importance_uniform_mix) {
  if (!model_) throw std::invalid_argument("Objective: model is null");
  options_.validate();
  options_.last_step_for(schedule_.T());
}

Variable Objective::loss(const Tensor& x0, Rng& rng) {
  return loss(x0, rng, 0, batch_size_of(x0, "Objective::loss", "x0"));
}

Variable Objective::loss(const Tensor& x0, Rng& rng, int64_t begin, int64_t end) {
  const int64_t n = batch_size_of(x0, "Objective::loss", "x0");
  if (begin < 0 || end > n || begin > end)
    throw std::invalid_argument("Objective::loss: rows [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") of a batch of " + std::to_string(n));
  const bool adaptive = options_.importance_sampling && model_->is_training();
  if (adaptive && end - begin != n)
    throw std::invalid_argument(
        "Objective::loss: importance-sampled steps need every row's terms; data-parallel "
        "training (a shard of the batch) supports uniform steps only");
  // Before warm-up the sampler draws uniform steps, exactly as sample_steps does.
  StepBatch steps;
  if (adaptive) {
    steps = sampler_.sample(n, rng);
  } else {
    steps.steps = sample_steps(n, rng, options_.first_step, options_.last_step_for(schedule_.T()));
    steps.weights.assign(static_cast<size_t>(n), 1.0);
  }
  Tensor eps = randn(x0.shape(), rng);
  if (begin == end) return Variable(Tensor::scalar(0.0f));  // a rank with no rows of a small batch
  if (end - begin != n) {
    steps.steps = {steps.steps.begin() + begin, steps.steps.begin() + end};
    steps.weights = {steps.weights.begin() + begin, steps.weights.begin() + end};
    return loss(x0.narrow(0, begin, end - begin), steps, eps.narrow(0, begin, end - begin));
  }
  std::vector<double> terms;
  Variable value = loss(x0, steps, eps, adaptive ? &terms : nullptr);
  if (adaptive) sampler_.record(steps.steps, terms);
  return value;
}

Variable Objective::loss(const Tensor& x0, const StepBatch& steps, const Tensor& eps,
                         std::vector<double>* terms) {
  const int64_t n = batch_size_of(x0, "Objective::loss", "x0");
  require_per_sample(eps, n, "Objective::loss", "eps");
  if (static_cast<int64_t>(steps.weights.size()) != n)
    throw std::invalid_argument("Objective::loss: " + std::to_string(steps.weights.size()) +
                                " step weights for " + std::to_string(n) + " samples");
  const std::vector<double> abar = abar_at(schedule_, steps.steps, "Objective::loss");
  Variable x_t(q_sample(schedule_, x0, steps.steps, eps));
  std::vector<int64_t> index(steps.steps);
  for (auto& t : index) --t;  // the network sees the 0-based index t - 1
  Variable prediction = model_->forward(x_t, index);

  Variable simple;
  if (options_.loss != LossKind::vlb)
    simple = mse_loss(prediction, Variable(target_value(options_.target, x0, eps, abar)));
  if (options_.loss == LossKind::simple) return simple;
  Variable vlb = vlb_loss(x0, steps, eps, x_t, prediction, abar, terms);
  if (options_.loss == LossKind::vlb) return vlb;
  return simple + vlb * static_cast<float>(options_.hybrid_lambda);
}

// sum_i T weight_i (w_{t_i} mean_d (eps - eps_theta)^2 + c_{t_i}) / B + mean_i L_T(x0_i): an
// unbiased estimate of the bound in nats/dim. Only the eps_theta part carries a gradient.
Variable Objective::vlb_loss(const Tensor& x0, const StepBatch& steps, const Tensor& eps,
                             const Variable& x_t, const Variable& prediction,
                             const std::vector<double>& abar, std::vector<double>* terms) const {
  const int64_t n = x0.size(0), dims = sample_size(x0);
  Variable eps_theta =
      convert_prediction(prediction, options_.target, PredictionTarget::eps, x_t, abar);
  Variable mean_square =
      mean(reshape(square(eps_theta - Variable(eps)), Shape{n, dims}), std::vector<int>{1});
  const std::vector<double> prior = prior_terms(schedule_, x0);
  const Tensor& mean_square_values = mean_square.data();
  std::vector<double> scale(static_cast<size_t>(n));
  double constant = 0;
  if (terms) terms->assign(static_cast<size_t>(n), 0.0);
  for (size_t i = 0; i < scale.size(); ++i) {
    const VlbCoefficients c =
        vlb_coefficients(schedule_, steps.steps[i], options_.reverse_variance);
    const double estimator =
        static_cast<double>(schedule_.T()) * steps.weights[i] / static_cast<double>(n);
    scale[i] = estimator * c.weight;
    constant += estimator * c.constant + prior[i] / static_cast<double>(n);
    if (terms)
      (*terms)[i] = c.weight * static_cast<double>(mean_square_values.data()[i]) + c.constant;
  }
  return sum(mean_square * Variable(per_sample_column(scale, 1))) + static_cast<float>(constant);
}

std::function<Variable(const datasets::Batch&, Rng&)> make_loss_fn(
    std::shared_ptr<Objective> objective) {
  if (!objective) throw std::invalid_argument("make_loss_fn: objective is null");
  return [objective](const datasets::Batch& batch, Rng& rng) {
    const datasets::RowRange rows = batch.loss_rows();
    return objective->loss(batch.data, rng, rows.begin, rows.end);
  };
}

nlohmann::json BoundResult::to_json() const {
  return {{"bound", bound},      {"bits_per_dim", bound / std::numbers::ln2},
          {"prior", prior},      {"transitions", transitions},
          {"decoder", decoder},  {"std_error", std_error},
          {"samples", samples},  {"dims", dims},
          {"per_step", per_step}};
}

BoundResult evaluate_bound(NoisePredictor& predictor, const Schedule& schedule, const Tensor& data,
                           const BoundOptions& options) {
  const int64_t n = batch_size_of(data, "evaluate_bound", "data");
  if (options.batch_size < 1)
    throw std::invalid_argument("evaluate_bound: batch_size must be >= 1, got " +
                                std::to_string(options.batch_size));
  dist::Communicator& ranks =
      options.communicator ? *options.communicator : dist::Communicator::self();
  const int64_t T = schedule.T();
  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  Rng rng(options.seed);
  BoundResult result;
  result.samples = n;
  result.dims = sample_size(data);
  // per_step [T + 1] then the prior, summed over this rank's rows, then over the ranks.
  std::vector<double> sums(static_cast<size_t>(T) + 2, 0.0);
  std::vector<double> per_sample;  // this rank's rows, in order
  int64_t done = 0;
  for (int64_t begin = 0; begin < n; begin += options.batch_size) {
    const int64_t length = std::min(options.batch_size, n - begin);
    const dist::Shard shard = dist::shard_of(length, ranks.rank(), ranks.size());
    const size_t first = per_sample.size();
    per_sample.resize(first + static_cast<size_t>(shard.size()), 0.0);
    double* bound_of = per_sample.data() + first;
    Tensor x0;  // this rank's rows of the batch (none when there are fewer rows than ranks)
    if (shard.size() > 0) {
      x0 = data.narrow(0, begin + shard.begin, shard.size()).contiguous();
      const std::vector<double> prior = prior_terms(schedule, x0);
      for (int64_t i = 0; i < shard.size(); ++i) {
        bound_of[i] += prior[static_cast<size_t>(i)];
        sums.back() += prior[static_cast<size_t>(i)];
      }
    }
    std::vector<int64_t> batch_shape = data.shape().vec();
    batch_shape[0] = length;
    for (int64_t t = 1; t <= T; ++t) {
      const Tensor noise = randn(Shape(batch_shape), rng);  // the whole batch's, as one process
      if (shard.size() > 0) {
        const Tensor eps = noise.narrow(0, shard.begin, shard.size()).contiguous();
        const std::vector<double> terms =
            vlb_terms(predictor, schedule, x0, t, eps, options.reverse_variance);
        for (int64_t i = 0; i < shard.size(); ++i) {
          bound_of[i] += terms[static_cast<size_t>(i)];
          sums[static_cast<size_t>(t)] += terms[static_cast<size_t>(i)];
        }
      }
      if (options.progress) options.progress(++done, batches * T);
    }
  }
  ranks.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  per_sample = ranks.allgather(per_sample);
  const double count = static_cast<double>(n);
  result.per_step.assign(sums.begin(), sums.end() - 1);
  for (double& term : result.per_step) term /= count;
  result.prior = sums.back() / count;
  result.decoder = result.per_step[1];
  for (int64_t t = 2; t <= T; ++t) result.transitions += result.per_step[static_cast<size_t>(t)];
  result.bound = result.prior + result.transitions + result.decoder;
  if (n > 1) {
    double mean_bound = 0, spread = 0;
    for (double b : per_sample) mean_bound += b / count;
    for (double b : per_sample) spread += (b - mean_bound) * (b - mean_bound);
    result.std_error = std::sqrt(spread / (count - 1) / count);
  }
  return result;
}

}  // namespace dpm::diffusion
