#include "diffusion/jacobian.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/rng.hpp"
#include "datasets/dense.hpp"
#include "nn/lipschitz/operator_norm.hpp"

namespace dpm::diffusion {
namespace {

constexpr double kUnknown = std::numeric_limits<double>::infinity();

using datasets::row_norm;

// Scales every row of v [B, n] to unit norm; a zero row is replaced by `fallback`'s row.
void normalize_rows(std::vector<double>& v, int64_t n, const std::vector<double>& fallback) {
  const int64_t rows = static_cast<int64_t>(v.size()) / n;
  for (int64_t i = 0; i < rows; ++i) {
    double* row = v.data() + i * n;
    const double norm = row_norm(row, n);
    if (norm > 0 && std::isfinite(norm))
      for (int64_t j = 0; j < n; ++j) row[j] /= norm;
    else
      std::copy_n(fallback.data() + i * n, n, row);
  }
}

std::vector<double> random_unit_rows(int64_t rows, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(static_cast<size_t>(rows * n));
  for (double& x : v) x = rng.normal();
  normalize_rows(v, n, std::vector<double>(v.size(), 1.0 / std::sqrt(static_cast<double>(n))));
  return v;
}

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

// Eval mode while alive; the previous mode is restored however the scope exits.
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

void check_settings(const JacobianNormSettings& settings) {
  if (settings.tolerance < 0 || settings.min_iterations < 1 ||
      settings.max_iterations < settings.min_iterations)
    throw std::invalid_argument(
        "jacobian_norms: need tolerance >= 0 and 1 <= min_iterations <= max_iterations, got " +
        std::to_string(settings.tolerance) + ", " + std::to_string(settings.min_iterations) + ", " +
        std::to_string(settings.max_iterations));
}

// The subspace of jacobian_norms: basis[k] [B, n] orthonormal per sample across k,
// images[k] = J basis[k].
struct KrylovSubspace {
  std::vector<std::vector<double>> basis, images;

  int64_t size() const { return static_cast<int64_t>(basis.size()); }
};

// What jacobian_norms keeps per map besides the norms it returns.
struct MapProgress {
  JacobianNorms norms;
  std::vector<double> change;  // [B]: sigma's last relative change (infinite: none yet)
  std::vector<double> left;    // [B, n]: the top left Ritz vector M v / ||M v|| at the direction
};

// Every map's progress before the first iteration: nothing measured, nothing converged.
std::vector<MapProgress> start_progress(size_t maps, int64_t rows, int64_t n) {
  const auto count = static_cast<size_t>(rows);
  std::vector<MapProgress> progress(maps);
  for (MapProgress& map : progress) {
    map.norms.sigma.assign(count, 0.0);
    map.norms.remaining_error.assign(count, kUnknown);
    map.norms.converged.assign(count, 0);
    map.norms.direction.assign(count * static_cast<size_t>(n), 0.0);
    map.change.assign(count, kUnknown);
    map.left.assign(count * static_cast<size_t>(n), 0.0);
  }
  return progress;
}

// The columns a V + b J V [k, n] of sample i (V its basis, k = subspace.size()).
std::vector<double> mapped_basis(const AffineCombination& map, const KrylovSubspace& subspace,
                                 int64_t i, int64_t n) {
  const int64_t k = subspace.size();
  std::vector<double> m(static_cast<size_t>(k * n));
  for (int64_t c = 0; c < k; ++c)
    for (int64_t e = 0; e < n; ++e)
      m[c * n + e] = map.identity * subspace.basis[c][i * n + e] +
                     map.jacobian * subspace.images[c][i * n + e];
  return m;
}

// The Gram matrix [k, k] of the rows of m [k, n].
std::vector<double> gram_matrix(const std::vector<double>& m, int64_t k, int64_t n) {
  std::vector<double> gram(static_cast<size_t>(k * k));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b <= a; ++b) {
      double sum = 0.0;
      for (int64_t e = 0; e < n; ++e) sum += m[a * n + e] * m[b * n + e];
      gram[a * k + b] = gram[b * k + a] = sum;
    }
  return gram;
}

// The Ritz step of one map on sample i: returns sigma, the largest singular value of M V, and
// writes direction V y [n] and left M V y / sigma [n], y its right singular vector.
double top_ritz_pair(const AffineCombination& map, const KrylovSubspace& subspace, int64_t i,
                     int64_t n, double* direction, double* left) {
  const int64_t k = subspace.size();
  const std::vector<double> m = mapped_basis(map, subspace, i, n);
  std::vector<double> gram = gram_matrix(m, k, n);
  std::vector<double> eigenvalues(static_cast<size_t>(k));
  if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', static_cast<lapack_int>(k), gram.data(),
                     static_cast<lapack_int>(k), eigenvalues.data()) != 0)
    throw std::runtime_error("jacobian_norms: eigen-solve of a Ritz Gram matrix failed");
  // The top eigenvector y is the last column.
  const double sigma = std::sqrt(std::max(eigenvalues[k - 1], 0.0));
  std::fill_n(direction, n, 0.0);
  std::fill_n(left, n, 0.0);
  for (int64_t c = 0; c < k; ++c) {
    const double y = gram[c * k + (k - 1)];
    for (int64_t e = 0; e < n; ++e) {
      direction[e] += y * subspace.basis[c][i * n + e];
      left[e] += y * m[c * n + e] / (sigma > 0 ? sigma : 1.0);
    }
  }
  return sigma;
}

// Records sample i's sigma at `iteration`; returns whether the sample has converged on the map.
bool record_sigma(MapProgress& map, int64_t i, double sigma, int iteration, double tolerance) {
  JacobianNorms& norms = map.norms;
  if (iteration > 1) {
    const double previous = map.change[i];
    map.change[i] = lipschitz::relative_change(norms.sigma[i], sigma);
    // Once converged, the error estimate is kept: later changes are at the level of the
    // finite-difference noise, whose ratios say nothing about convergence.
    if (!norms.converged[i])
      norms.remaining_error[i] = lipschitz::extrapolated_error(map.change[i], previous);
  }
  norms.sigma[i] = sigma;
  norms.converged[i] = norms.remaining_error[i] <= tolerance;
  return norms.converged[i];
}

// One iteration's Ritz step and bookkeeping for every map and sample; returns whether every
// sample has converged on every map.
bool update_norms(const std::vector<AffineCombination>& maps, const KrylovSubspace& subspace,
                  int64_t rows, int64_t n, int iteration, double tolerance,
                  std::vector<MapProgress>& progress) {
  bool all_converged = true;
  for (size_t j = 0; j < maps.size(); ++j) {
    MapProgress& map = progress[j];
    map.norms.iterations = iteration;
    for (int64_t i = 0; i < rows; ++i) {
      const double sigma = top_ritz_pair(
          maps[j], subspace, i, n, map.norms.direction.data() + i * n, map.left.data() + i * n);
      const bool converged = record_sigma(map, i, sigma, iteration, tolerance);
      all_converged = all_converged && converged;
    }
  }
  return all_converged;
}

// A full subspace makes the Ritz values exact: nothing is left to add.
void mark_exact(std::vector<MapProgress>& progress) {
  for (MapProgress& map : progress) {
    std::fill(map.norms.remaining_error.begin(), map.norms.remaining_error.end(), 0.0);
    std::fill(map.norms.converged.begin(), map.norms.converged.end(), 1);
  }
}

// Per sample, the map whose left vector seeds the next direction: the next one in turn (starting
// from this iteration's) that the sample has not converged on.
std::vector<size_t> choose_maps(const std::vector<MapProgress>& progress, int iteration,
                                int64_t rows) {
  std::vector<size_t> chosen(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    size_t j = static_cast<size_t>(iteration) % progress.size();
    for (size_t tried = 0; tried < progress.size() && progress[j].norms.converged[i]; ++tried)
      j = (j + 1) % progress.size();
    chosen[i] = j;
  }
  return chosen;
}

// Writes column [n] minus its projection on sample i's basis, scaled to unit norm, to out [n].
// Gram-Schmidt is repeated twice; a column already inside the subspace (an invariant subspace:
// the Ritz values are exact) is replaced by a random one.
void orthonormalize(std::vector<double>& column, const KrylovSubspace& subspace, int64_t i,
                    int64_t n, Rng& rng, double* out) {
  const int64_t k = subspace.size();
  for (int attempt = 0;; ++attempt) {
    const double before = row_norm(column.data(), n);
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t c = 0; c < k; ++c) {
        const double* q = subspace.basis[c].data() + i * n;
        double dot = 0.0;
        for (int64_t e = 0; e < n; ++e) dot += q[e] * column[e];
        for (int64_t e = 0; e < n; ++e) column[e] -= dot * q[e];
      }
    const double after = row_norm(column.data(), n);
    if (after > 1e-8 * before && after > 0) {
      for (int64_t e = 0; e < n; ++e) out[e] = column[e] / after;
      return;
    }
    if (attempt > 8)
      throw std::runtime_error("jacobian_norms: cannot extend the subspace of sample " +
                               std::to_string(i));
    for (double& x : column) x = rng.normal();
  }
}

// The next basis vectors [B, n]: each sample grows its subspace by M^T u for one map (see
// choose_maps), u that map's left vector, made orthonormal to the sample's basis.
std::vector<double> next_directions(BatchJacobian& jacobian,
                                    const std::vector<AffineCombination>& maps,
                                    const std::vector<MapProgress>& progress,
                                    const KrylovSubspace& subspace, int iteration, Rng& rng) {
  const int64_t rows = jacobian.batch(), n = jacobian.dim();
  const auto values = static_cast<size_t>(rows) * static_cast<size_t>(n);
  const std::vector<size_t> chosen = choose_maps(progress, iteration, rows);
  std::vector<double> seeds(values);
  for (int64_t i = 0; i < rows; ++i)
    std::copy_n(progress[chosen[i]].left.data() + i * n, n, seeds.data() + i * n);
  const std::vector<double> pulled = jacobian.vjp(seeds);
  std::vector<double> v(values, 0.0);
  std::vector<double> column(static_cast<size_t>(n));
  for (int64_t i = 0; i < rows; ++i) {
    const AffineCombination& map = maps[chosen[i]];
    for (int64_t e = 0; e < n; ++e)
      column[e] = map.identity * seeds[i * n + e] + map.jacobian * pulled[i * n + e];
    orthonormalize(column, subspace, i, n, rng, v.data() + i * n);
  }
  return v;
}

}  // namespace

void BatchJacobian::check_vector(const std::vector<double>& v, const char* caller) const {
  if (static_cast<int64_t>(v.size()) != batch() * dim())
    throw std::invalid_argument(std::string(caller) + ": expected " + std::to_string(batch()) +
                                " x " + std::to_string(dim()) + " values, got " +
                                std::to_string(v.size()));
}

EpsJacobian::EpsJacobian(NoisePredictor& predictor, int64_t t, DoubleBatch x)
    : t_(t), x_(std::move(x)), predictor_(predictor) {
  x_.validate("EpsJacobian");
  if (x_.batch() < 1) throw std::invalid_argument("EpsJacobian: the batch of points is empty");
}

std::vector<double> EpsJacobian::jvp(const std::vector<double>& v) {
  check_vector(v, "EpsJacobian::jvp");
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
  nn::NoiseModel& model = network_.model();
  FrozenParameters frozen(model);
  EvalScope eval(model);
  const auto rows = static_cast<size_t>(batch());
  input_ = Variable(x_.to_tensor(), /*requires_grad=*/true);
  const Variable out = model.forward(input_, std::vector<int64_t>(rows, t_ - 1));
  eps_ = convert_prediction(out, network_.options().target, PredictionTarget::eps, input_,
                            std::vector<double>(rows, network_.schedule().abar(t_)));
}

std::vector<double> NetworkEpsJacobian::vjp(const std::vector<double>& u) {
  check_vector(u, "NetworkEpsJacobian::vjp");
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

std::vector<double> OracleEpsJacobian::vjp(const std::vector<double>& u) {
  check_vector(u, "OracleEpsJacobian::vjp");
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

std::vector<double> AffineJacobian::jvp(const std::vector<double>& v) {
  return combine(v, inner_->jvp(v));
}

std::vector<double> AffineJacobian::vjp(const std::vector<double>& u) {
  return combine(u, inner_->vjp(u));
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

std::vector<double> ChainJacobian::jvp(const std::vector<double>& v) {
  check_vector(v, "ChainJacobian::jvp");
  std::vector<double> w = v;
  for (const auto& step : steps_) w = step->jvp(w);
  for (double& x : w) x *= scale_;
  return w;
}

std::vector<double> ChainJacobian::vjp(const std::vector<double>& u) {
  check_vector(u, "ChainJacobian::vjp");
  std::vector<double> w = u;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) w = (*it)->vjp(w);
  for (double& x : w) x *= scale_;
  return w;
}

double JacobianNorms::max() const {
  double m = 0.0;
  for (double s : sigma) m = std::max(m, s);
  return m;
}

double JacobianNorms::mean() const {
  double sum = 0.0;
  for (double s : sigma) sum += s;
  return sigma.empty() ? 0.0 : sum / static_cast<double>(sigma.size());
}

int64_t JacobianNorms::converged_count() const {
  return std::count(converged.begin(), converged.end(), 1);
}

std::vector<JacobianNorms> jacobian_norms(BatchJacobian& jacobian,
                                          const std::vector<AffineCombination>& maps,
                                          const JacobianNormSettings& settings) {
  if (maps.empty()) throw std::invalid_argument("jacobian_norms: no maps to measure");
  check_settings(settings);
  const int64_t rows = jacobian.batch(), n = jacobian.dim();
  std::vector<MapProgress> progress = start_progress(maps.size(), rows, n);
  KrylovSubspace subspace;
  Rng rng(settings.seed);
  std::vector<double> v = random_unit_rows(rows, n, rng.next_u64());
  for (int iteration = 1;; ++iteration) {
    subspace.images.push_back(jacobian.jvp(v));
    subspace.basis.push_back(std::move(v));
    const bool all_converged =
        update_norms(maps, subspace, rows, n, iteration, settings.tolerance, progress);
    if (subspace.size() == n) {
      mark_exact(progress);
      break;
    }
    if (iteration >= settings.min_iterations &&
        (all_converged || iteration >= settings.max_iterations))
      break;
    v = next_directions(jacobian, maps, progress, subspace, iteration, rng);
  }
  std::vector<JacobianNorms> out;
  out.reserve(progress.size());
  for (MapProgress& map : progress) out.push_back(std::move(map.norms));
  return out;
}

JacobianNorms jacobian_norm(BatchJacobian& jacobian, const JacobianNormSettings& settings) {
  return std::move(jacobian_norms(jacobian, {AffineCombination{}}, settings).front());
}

JacobianNorms forward_iteration(BatchJacobian& jacobian, int iterations, uint64_t seed) {
  if (iterations < 1)
    throw std::invalid_argument("forward_iteration: need iterations >= 1, got " +
                                std::to_string(iterations));
  const int64_t rows = jacobian.batch(), n = jacobian.dim();
  const auto count = static_cast<size_t>(rows);
  JacobianNorms out;
  out.sigma.assign(count, 0.0);
  out.remaining_error.assign(count, kUnknown);
  out.converged.assign(count, 0);
  std::vector<double> v = random_unit_rows(rows, n, seed);
  out.direction = v;
  for (int k = 0; k < iterations; ++k) {
    std::vector<double> w = jacobian.jvp(v);
    ++out.iterations;
    for (int64_t i = 0; i < rows; ++i) {
      const double sigma = row_norm(w.data() + i * n, n);
      if (sigma > out.sigma[i]) {
        out.sigma[i] = sigma;
        std::copy_n(v.data() + i * n, n, out.direction.data() + i * n);
      }
    }
    normalize_rows(w, n, v);
    v = std::move(w);
  }
  return out;
}

}  // namespace dpm::diffusion
