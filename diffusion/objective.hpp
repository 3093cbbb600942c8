#pragma once
// Training objectives and the variational bound (docs/protocol.md, The variational bound). All
// values are in nats per dimension: per-sample quantities are divided by D, the number of elements
// of one sample.
//
// The bound -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0 with a fixed reverse variance
// sigma_t^2 (beta_t or beta~_t). Step t's term (t = 1..T) is
//   t >= 2: L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || N(mu_theta(x_t,t), sigma_t^2 I))
//          = w_t ||eps - eps_theta||^2 + D/2 (log(sigma_t^2 / beta~_t) + beta~_t / sigma_t^2 - 1)
//   t = 1:  L_0 = -log N(x_0; mu_theta(x_1, 1), sigma_1^2 I)
//          = w_1 ||eps - eps_theta||^2 + D/2 log(2 pi sigma_1^2)
// with w_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)), and
//   L_T = KL(q(x_T|x_0) || N(0, I)) = 1/2 (abar_T ||x_0||^2 - D abar_T - D log(1 - abar_T)).
// At t = 1 sigma_1^2 = beta_1 for both choices: beta~_1 = 0 would make L_0 degenerate (an
// infinitely narrow decoder), so, as DDPM does, the decoder uses beta_1. The constants are kept,
// so the bound is the real bound, not one up to a constant.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "autograd/state_dict.hpp"
#include "autograd/tensor.hpp"
#include "autograd/variable.hpp"
#include "datasets/data_loader.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/reverse_variance.hpp"
#include "diffusion/schedule.hpp"
#include "distributed/communicator.hpp"
#include "nn/noise_model.hpp"

namespace dpm::diffusion {

enum class LossKind {
  simple,  // mean over elements of (prediction - target)^2, t uniform (the paper's)
  vlb,     // T L_t at uniform (or importance-sampled) t, plus L_T: an estimate of the bound
  hybrid,  // simple + lambda vlb (Nichol & Dhariwal)
};

const char* loss_kind_name(LossKind kind);
LossKind parse_loss_kind(const std::string& name);
const char* reverse_variance_name(ReverseVariance variance);
ReverseVariance parse_reverse_variance(const std::string& name);

struct ObjectiveOptions {
  LossKind loss = LossKind::simple;
  PredictionTarget target = PredictionTarget::eps;
  ReverseVariance reverse_variance = ReverseVariance::beta;  // vlb and hybrid
  // vlb only: t drawn with p_t ∝ sqrt(E[L_t^2]) (the last 10 values per t), uniform until every
  // t has 10, and the term weighted by 1 / (T p_t). Mixed with the uniform distribution by
  // importance_uniform_mix, as Nichol & Dhariwal's code does, so no step starves.
  bool importance_sampling = false;
  double importance_uniform_mix = 0.001;
  // The reverse variance is fixed here, so nothing of L_vlb has to be kept from the mean (the
  // stop-gradient of Nichol & Dhariwal applies only with a learned variance). Their code adds the
  // per-step KL in bits; ours is nats per dimension.
  double hybrid_lambda = 1e-3;
  // simple only: the steps drawn, in training and validation, are first_step..last_step (0: T)
  // instead of 1..T. A denoiser never evaluates its network above t_hat of the lowest SNR it
  // serves, so a network trained for SNRs above that spends all of its budget there.
  int64_t first_step = 1;
  int64_t last_step = 0;

  // Throws std::invalid_argument naming the field (importance sampling with a loss other than
  // vlb, lambda or mix out of range, a step range that is empty or used with another loss).
  void validate() const;
  // The step range's last step under a schedule of T steps; throws naming 'last_step' when it
  // is beyond T.
  int64_t last_step_for(int64_t T) const;
  // {"loss", "target", "reverse_variance", "importance_sampling", "importance_uniform_mix",
  //  "hybrid_lambda", "first_step", "last_step"}; from_json is strict (unknown fields and bad
  // values name the field) and validates; missing fields take the defaults.
  nlohmann::json to_json() const;
  static ObjectiveOptions from_json(const nlohmann::json& config);
};

// Step t's term per dimension: weight * mean_d (eps - eps_theta)^2 + constant (see the top).
struct VlbCoefficients {
  double weight = 0;    // w_t
  double constant = 0;  // the constant of the term over D
};
VlbCoefficients vlb_coefficients(const Schedule& schedule, int64_t t, ReverseVariance variance);

// L_T per sample, nats/dim; x0: [B, ...].
std::vector<double> prior_terms(const Schedule& schedule, const Tensor& x0);

// Step t's term per sample (nats/dim) for clean x0 and noise eps (x_t = q_sample(x0, t, eps)),
// with eps_theta from the predictor: one predictor evaluation.
std::vector<double> vlb_terms(NoisePredictor& predictor, const Schedule& schedule, const Tensor& x0,
                              int64_t t, const Tensor& eps, ReverseVariance variance);

// Steps of a batch with their estimator weights 1 / (T p_t) (1 for uniform steps).
struct StepBatch {
  std::vector<int64_t> steps;
  std::vector<double> weights;
};

// Nichol & Dhariwal's loss-aware step sampler (their LossSecondMomentResampler).
class ImportanceStepSampler {
 public:
  static constexpr int64_t kHistory = 10;

  ImportanceStepSampler(int64_t T, double uniform_mix);

  bool warmed_up() const;  // every step has kHistory recorded values
  // p_t at index t - 1: uniform before warm-up, then
  // (1 - uniform_mix) sqrt(E[L_t^2]) / sum_s sqrt(E[L_s^2]) + uniform_mix / T.
  std::vector<double> probabilities() const;
  // n steps drawn from probabilities(), with weights 1 / (T p_t).
  StepBatch sample(int64_t n, Rng& rng) const;
  // Appends each step's term value, keeping the last kHistory per step.
  void record(const std::vector<int64_t>& steps, const std::vector<double>& terms);

  // "history" [T, kHistory], "filled" [T], "next" [T], for resume files. Values are stored as
  // float32 when recorded, so a save/load round trip is exact.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 private:
  int64_t T_;
  double uniform_mix_;
  std::vector<float> history_;  // [T, kHistory], a ring per step
  std::vector<int64_t> filled_;
  std::vector<int64_t> next_;
};

// A training objective over a noise model. loss() builds the graph of one batch.
class Objective {
 public:
  Objective(std::shared_ptr<nn::NoiseModel> model, Schedule schedule, ObjectiveOptions options);

  // Draws the steps (importance-sampled for vlb when enabled and the model is in training
  // mode; uniform over the options' step range otherwise, e.g. under Trainer::evaluate), then
  // eps ~ N(0, I), both from rng, and returns the loss. In training mode with importance
  // sampling on, the batch's terms are recorded in the sampler.
  Variable loss(const Tensor& x0, Rng& rng);
  // The loss of rows [begin, end) of x0 (their mean), with the steps and noise drawn for all of
  // x0's rows exactly as loss(x0, rng) draws them: a data-parallel rank computes its shard of a
  // global batch with the draws the whole batch would get, so the result does not depend on how
  // many ranks share it (no rows: 0, after the same draws). Importance sampling needs every
  // row's terms: only for all rows.
  Variable loss(const Tensor& x0, Rng& rng, int64_t begin, int64_t end);
  // The same for given steps, weights and noise (deterministic). `terms`, when given, receives
  // each sample's step term in nats/dim (vlb and hybrid).
  Variable loss(const Tensor& x0, const StepBatch& steps, const Tensor& eps,
                std::vector<double>* terms = nullptr);

  nn::NoiseModel& model() { return *model_; }
  const Schedule& schedule() const { return schedule_; }
  const ObjectiveOptions& options() const { return options_; }
  ImportanceStepSampler& sampler() { return sampler_; }

 private:
  Variable vlb_loss(const Tensor& x0, const StepBatch& steps, const Tensor& eps,
                    const Variable& x_t, const Variable& prediction,
                    const std::vector<double>& abar, std::vector<double>* terms) const;

  std::shared_ptr<nn::NoiseModel> model_;
  Schedule schedule_;
  ObjectiveOptions options_;
  ImportanceStepSampler sampler_;
};

// The objective as a train::Trainer loss closure (it keeps the objective alive).
std::function<Variable(const datasets::Batch&, Rng&)> make_loss_fn(
    std::shared_ptr<Objective> objective);

struct BoundOptions {
  ReverseVariance reverse_variance = ReverseVariance::beta;
  int64_t batch_size = 1000;  // data samples per batch; each batch costs T predictor calls
  uint64_t seed = 0;          // the noise draws
  // Called after every predictor evaluation with (done, total).
  std::function<void(int64_t, int64_t)> progress;
  // The ranks that share the work (nullptr: this process alone). Each evaluates its shard of
  // every batch's rows, drawing the noise of the whole batch as one process does, so the result
  // does not depend on the number of ranks up to float summation order. Collective.
  dist::Communicator* communicator = nullptr;
};

// The bound over a dataset, nats/dim, every step evaluated (one noise draw per sample and step).
struct BoundResult {
  double bound = 0;              // prior + transitions + decoder
  double prior = 0;              // L_T
  double transitions = 0;        // sum_{t=2..T} L_{t-1}
  double decoder = 0;            // L_0
  std::vector<double> per_step;  // [T + 1]: index t holds step t's mean term; index 0 unused (0)
  double std_error = 0;          // of `bound`, from the spread of the per-sample bounds
  int64_t samples = 0;
  int64_t dims = 0;  // D
  nlohmann::json to_json() const;
};

BoundResult evaluate_bound(NoisePredictor& predictor, const Schedule& schedule, const Tensor& data,
                           const BoundOptions& options = {});

}  // namespace dpm::diffusion
