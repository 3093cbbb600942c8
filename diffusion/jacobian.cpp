#include "diffusion/jacobian.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "datasets/dense.hpp"

namespace dpm::diffusion {
namespace {

using datasets::row_norm;

// Parameters stop requiring gradients while alive, so a backward pass computes the input's
// gradient only (no weight-gradient GEMMs, no writes into the model's gradient buffers).
class FrozenParameters {
 public:
  explicit FrozenParameters(const nn::Module& module) : parameters_(module.parameters()) {
    for (Variable& p : parameters_) {
      required_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
  }
  ~FrozenParameters() {
    for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].set_requires_grad(required_[i]);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<Variable> parameters_;
  std::vector<bool> required_;
};

}  // namespace

EpsJacobian::EpsJacobian(NoisePredictor& predictor, int64_t t, DoubleBatch x)
    : t_(t), x_(std::move(x)), predictor_(predictor) {
  x_.validate("EpsJacobian");
  if (x_.batch() < 1) throw std::invalid_argument("EpsJacobian: the batch of points is empty");
}

DoubleBatch EpsJacobian::eps() {
  return predictor_.predict_eps(x_, t_);
}

std::vector<double> EpsJacobian::apply(const std::vector<double>& v) {
  check_input(v, "EpsJacobian::apply");
  const int64_t rows = batch(), n = dim();
  // Rows 0..B-1: x + h v / ||v||; rows B..2B-1: x - h v / ||v||.
  DoubleBatch shifted{x_.shape, std::vector<double>(static_cast<size_t>(2 * rows * n))};
  shifted.shape[0] = 2 * rows;
  std::vector<double> step(static_cast<size_t>(rows)), length(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    const double* xi = x_.values.data() + i * n;
    const double* vi = v.data() + i * n;
    length[i] = row_norm(vi, n);
    step[i] = kFiniteDifferenceStep * std::max(row_norm(xi, n), 1.0);
    const double along = length[i] > 0 ? step[i] / length[i] : 0.0;
    for (int64_t j = 0; j < n; ++j) {
      shifted.values[i * n + j] = xi[j] + along * vi[j];
      shifted.values[(rows + i) * n + j] = xi[j] - along * vi[j];
    }
  }
  const DoubleBatch eps = predictor_.predict_eps(shifted, t_);
  std::vector<double> out(static_cast<size_t>(rows * n));
  for (int64_t i = 0; i < rows; ++i) {
    const double factor = length[i] / (2 * step[i]);
    for (int64_t j = 0; j < n; ++j)
      out[i * n + j] = (eps.values[i * n + j] - eps.values[(rows + i) * n + j]) * factor;
  }
  return out;
}

NetworkEpsJacobian::NetworkEpsJacobian(NetworkPredictor& network, int64_t t, DoubleBatch x,
                                       bool keep_graph)
    : EpsJacobian(network, t, std::move(x)), network_(network), keep_graph_(keep_graph) {
  if (t < 1 || t > network.schedule().T())
    throw std::invalid_argument("NetworkEpsJacobian: step " + std::to_string(t) + " outside 1.." +
                                std::to_string(network.schedule().T()));
}

void NetworkEpsJacobian::build_graph() {
  FrozenParameters frozen(network_.model());
  input_ = Variable(x_.to_tensor(), /*requires_grad=*/true);
  eps_ = network_.eps_graph(input_, t_);
}

DoubleBatch NetworkEpsJacobian::eps() {
  if (!eps_.defined()) build_graph();
  return DoubleBatch::from_tensor(eps_.data());
}

std::vector<double> NetworkEpsJacobian::adjoint(const std::vector<double>& u) {
  check_output(u, "NetworkEpsJacobian::adjoint");
  if (!eps_.defined()) build_graph();
  const Tensor seed = DoubleBatch{x_.shape, u}.to_tensor();
  input_.zero_grad();
  {
    FrozenParameters frozen(network_.model());
    eps_.backward(seed, /*retain_graph=*/keep_graph_);
  }
  std::vector<double> out(u.size(), 0.0);
  if (input_.has_grad()) {
    const Tensor grad = input_.grad().contiguous();
    std::copy_n(grad.data(), grad.numel(), out.begin());
  }
  if (!keep_graph_) input_ = eps_ = Variable();
  return out;
}

OracleEpsJacobian::OracleEpsJacobian(GmmOracle& oracle, int64_t t, DoubleBatch x)
    : EpsJacobian(oracle, t, std::move(x)), oracle_(oracle) {
  if (dim() != oracle.dim())
    throw std::invalid_argument("OracleEpsJacobian: samples have " + std::to_string(dim()) +
                                " values, the prior has dimension " + std::to_string(oracle.dim()));
}

std::vector<double> OracleEpsJacobian::adjoint(const std::vector<double>& u) {
  check_output(u, "OracleEpsJacobian::adjoint");
  if (hessians_.empty()) hessians_ = oracle_.hessian(x_.values, t_);
  const int64_t rows = batch(), n = dim();
  const double factor = -std::sqrt(1.0 - oracle_.schedule().abar(t_));
  std::vector<double> out(u.size());
  for (int64_t i = 0; i < rows; ++i) {
    const double* h = hessians_.data() + i * n * n;
    for (int64_t a = 0; a < n; ++a) {
      double sum = 0.0;
      for (int64_t b = 0; b < n; ++b) sum += h[a * n + b] * u[i * n + b];
      out[i * n + a] = factor * sum;
    }
  }
  return out;
}

AffineJacobian::AffineJacobian(std::shared_ptr<BatchJacobian> inner, double identity_coefficient,
                               double jacobian_coefficient)
    : inner_(std::move(inner)), a_(identity_coefficient), b_(jacobian_coefficient) {
  if (!inner_) throw std::invalid_argument("AffineJacobian: inner Jacobian is null");
}

std::vector<double> AffineJacobian::combine(const std::vector<double>& v,
                                            std::vector<double> jv) const {
  for (size_t e = 0; e < jv.size(); ++e) jv[e] = a_ * v[e] + b_ * jv[e];
  return jv;
}

std::vector<double> AffineJacobian::apply(const std::vector<double>& v) {
  return combine(v, inner_->apply(v));
}

std::vector<double> AffineJacobian::adjoint(const std::vector<double>& u) {
  return combine(u, inner_->adjoint(u));
}

std::shared_ptr<BatchJacobian> mean_jacobian(std::shared_ptr<BatchJacobian> eps_jacobian,
                                             const Schedule& schedule, int64_t t) {
  const double inv_sqrt_alpha = 1.0 / std::sqrt(schedule.alpha(t));
  const double c = schedule.beta(t) / std::sqrt(1.0 - schedule.abar(t));
  return std::make_shared<AffineJacobian>(std::move(eps_jacobian), inv_sqrt_alpha,
                                          -c * inv_sqrt_alpha);
}

ChainJacobian::ChainJacobian(std::vector<std::shared_ptr<BatchJacobian>> steps, double scale)
    : steps_(std::move(steps)), scale_(scale) {
  if (steps_.empty()) throw std::invalid_argument("ChainJacobian: no steps");
  for (const auto& step : steps_)
    if (!step || step->batch() != batch() || step->dim() != dim())
      throw std::invalid_argument(
          "ChainJacobian: every step must be non-null with the first step's batch " +
          std::to_string(batch()) + " and dimension " + std::to_string(dim()));
}

std::vector<double> ChainJacobian::apply(const std::vector<double>& v) {
  check_input(v, "ChainJacobian::apply");
  std::vector<double> w = v;
  for (const auto& step : steps_) w = step->apply(w);
  for (double& x : w) x *= scale_;
  return w;
}

std::vector<double> ChainJacobian::adjoint(const std::vector<double>& u) {
  check_output(u, "ChainJacobian::adjoint");
  std::vector<double> w = u;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) w = (*it)->adjoint(w);
  for (double& x : w) x *= scale_;
  return w;
}

}  // namespace dpm::diffusion
