#include "diffusion/prediction.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/ops/arith.hpp"
#include "diffusion/per_sample.hpp"

namespace dpm::diffusion {
namespace {

constexpr PredictionTarget kTargets[] = {PredictionTarget::eps, PredictionTarget::x0,
                                         PredictionTarget::v};

// A quantity as c_x0 x_0 + c_eps eps, or as c_prediction prediction + c_xt x_t.
struct Pair {
  double first = 0, second = 0;
};

// Per-sample conversion coefficients, both columns.
struct CoefficientColumns {
  std::vector<double> prediction, x_t;
};

CoefficientColumns coefficient_columns(PredictionTarget from, PredictionTarget to,
                                       const std::vector<double>& abar) {
  CoefficientColumns c;
  for (double a : abar) {
    ConversionCoefficients k = conversion_coefficients(from, to, a);
    c.prediction.push_back(k.prediction);
    c.x_t.push_back(k.x_t);
  }
  return c;
}

// Eval mode while alive (BatchNorm uses running statistics); the caller's mode is restored however
// the scope exits.
class EvalScope {
 public:
  explicit EvalScope(nn::Module& module) : module_(module), training_(module.is_training()) {
    module_.eval();
  }
  ~EvalScope() { module_.train(training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  nn::Module& module_;
  bool training_;
};

}  // namespace

const char* prediction_target_name(PredictionTarget target) {
  switch (target) {
    case PredictionTarget::eps:
      return "eps";
    case PredictionTarget::x0:
      return "x0";
    case PredictionTarget::v:
      return "v";
  }
  return "unknown";
}

PredictionTarget parse_prediction_target(const std::string& name) {
  for (PredictionTarget target : kTargets)
    if (name == prediction_target_name(target)) return target;
  throw std::invalid_argument("unknown prediction target '" + name + "' (expected eps, x0 or v)");
}

ConversionCoefficients conversion_coefficients(PredictionTarget from, PredictionTarget to,
                                               double abar) {
  if (!(abar > 0 && abar < 1))
    throw std::invalid_argument("conversion_coefficients: abar must be in (0, 1), got " +
                                std::to_string(abar));
  if (from == to) return {1, 0};
  const double a = std::sqrt(abar), s = std::sqrt(1 - abar);
  // x_0 and eps in terms of (prediction, x_t), from x_t = a x_0 + s eps (and v = a eps - s x_0).
  Pair x0, eps;
  switch (from) {
    case PredictionTarget::eps:
      x0 = {-s / a, 1 / a}, eps = {1, 0};
      break;
    case PredictionTarget::x0:
      x0 = {1, 0}, eps = {-a / s, 1 / s};
      break;
    case PredictionTarget::v:
      x0 = {-s, a}, eps = {a, s};
      break;
  }
  // The wanted quantity in terms of (x_0, eps).
  Pair out;
  switch (to) {
    case PredictionTarget::eps:
      out = {0, 1};
      break;
    case PredictionTarget::x0:
      out = {1, 0};
      break;
    case PredictionTarget::v:
      out = {-s, a};
      break;
  }
  return {out.first * x0.first + out.second * eps.first,
          out.first * x0.second + out.second * eps.second};
}

Tensor convert_prediction(const Tensor& prediction, PredictionTarget from, PredictionTarget to,
                          const Tensor& x_t, const std::vector<double>& abar) {
  CoefficientColumns c = coefficient_columns(from, to, abar);
  return combine_per_sample(c.prediction, prediction, c.x_t, x_t, "convert_prediction");
}

Variable convert_prediction(const Variable& prediction, PredictionTarget from, PredictionTarget to,
                            const Variable& x_t, const std::vector<double>& abar) {
  const int64_t n = batch_size_of(prediction.data(), "convert_prediction", "prediction");
  require_per_sample(x_t.data(), n, "convert_prediction", "x_t");
  if (!(prediction.shape() == x_t.shape()))
    throw std::invalid_argument("convert_prediction: prediction " + prediction.shape().str() +
                                " and x_t " + x_t.shape().str() + " differ in shape");
  if (static_cast<int64_t>(abar.size()) != n)
    throw std::invalid_argument("convert_prediction: " + std::to_string(abar.size()) +
                                " abar values for " + std::to_string(n) + " samples");
  if (from == to) return prediction;
  CoefficientColumns c = coefficient_columns(from, to, abar);
  const int ndim = prediction.ndim();
  return prediction * Variable(per_sample_column(c.prediction, ndim)) +
         x_t * Variable(per_sample_column(c.x_t, ndim));
}

Tensor target_value(PredictionTarget target, const Tensor& x0, const Tensor& eps,
                    const std::vector<double>& abar) {
  const int64_t n = batch_size_of(x0, "target_value", "x0");
  require_per_sample(eps, n, "target_value", "eps");
  if (static_cast<int64_t>(abar.size()) != n)
    throw std::invalid_argument("target_value: " + std::to_string(abar.size()) +
                                " abar values for " + std::to_string(n) + " samples");
  switch (target) {
    case PredictionTarget::eps:
      return eps;
    case PredictionTarget::x0:
      return x0;
    case PredictionTarget::v:
      break;
  }
  std::vector<double> a, minus_s;
  for (double ab : abar) {
    a.push_back(std::sqrt(ab));
    minus_s.push_back(-std::sqrt(1 - ab));
  }
  return combine_per_sample(a, eps, minus_s, x0, "target_value");
}

NetworkPredictor::NetworkPredictor(std::shared_ptr<nn::NoiseModel> model, Schedule schedule,
                                   NetworkPredictorOptions options)
    : model_(std::move(model)), schedule_(std::move(schedule)), options_(options) {
  if (!model_) throw std::invalid_argument("NetworkPredictor: model is null");
  if (options_.max_batch < 1)
    throw std::invalid_argument("NetworkPredictor: max_batch must be >= 1, got " +
                                std::to_string(options_.max_batch));
}

void NetworkPredictor::check_step(int64_t t) const {
  if (t < 1 || t > schedule_.T())
    throw std::invalid_argument("NetworkPredictor: step " + std::to_string(t) + " outside 1.." +
                                std::to_string(schedule_.T()));
}

Tensor NetworkPredictor::compute_eps(const Tensor& x, int64_t t) {
  const int64_t n = batch_size_of(x, "NetworkPredictor", "x");
  check_step(t);
  NoGradGuard no_grad;
  EvalScope eval(*model_);
  if (n <= options_.max_batch) return eps_of_chunk(x, t);
  Tensor out = Tensor::empty(x.shape());
  for (int64_t begin = 0; begin < n; begin += options_.max_batch) {
    const int64_t length = std::min(options_.max_batch, n - begin);
    out.narrow(0, begin, length).copy_(eps_of_chunk(x.narrow(0, begin, length), t));
  }
  return out;
}

Tensor NetworkPredictor::eps_of_chunk(const Tensor& x, int64_t t) {
  const int64_t n = x.size(0);
  Tensor xc = x.contiguous();
  Tensor out =
      model_->forward(Variable(xc), std::vector<int64_t>(static_cast<size_t>(n), t - 1)).data();
  if (options_.target == PredictionTarget::eps) return out;
  return convert_prediction(out, options_.target, PredictionTarget::eps, xc,
                            std::vector<double>(static_cast<size_t>(n), schedule_.abar(t)));
}

Variable NetworkPredictor::eps_graph(const Variable& x, int64_t t) {
  const int64_t n = batch_size_of(x.data(), "NetworkPredictor::eps_graph", "x");
  check_step(t);
  count_evaluation();
  EvalScope eval(*model_);
  const Variable out = model_->forward(x, std::vector<int64_t>(static_cast<size_t>(n), t - 1));
  return convert_prediction(out, options_.target, PredictionTarget::eps, x,
                            std::vector<double>(static_cast<size_t>(n), schedule_.abar(t)));
}

}  // namespace dpm::diffusion
