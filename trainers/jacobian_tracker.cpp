#include "trainers/jacobian_tracker.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/lipschitz_bounds.hpp"
#include "diffusion/oracle_jacobian.hpp"
#include "diffusion/step_norms.hpp"

namespace dpm::train {
namespace {

// Streams split from the tracker's seed: probe noise by step t (as the audit's points), first
// directions beyond every t.
constexpr uint64_t kDirectionStream = 1'000'000;

double mean_of(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double max_of(const std::vector<double>& values) {
  return *std::max_element(values.begin(), values.end());
}

}  // namespace

void JacobianTrackerOptions::validate() const {
  auto fail = [](const std::string& field, const std::string& what) {
    throw std::invalid_argument("JacobianTracker: " + field + " " + what);
  };
  if (every < 1) fail("every", "must be >= 1, got " + std::to_string(every));
  if (snr_db.empty()) fail("snr_db", "is empty");
  for (double snr : snr_db)
    if (!std::isfinite(snr)) fail("snr_db", "holds a non-finite value");
  if (probes < 1 || probes > 1024)
    fail("probes", "must be in 1..1024, got " + std::to_string(probes));
  if (!(tolerance >= 0 && tolerance <= 1)) fail("tolerance", "must be in 0..1");
  if (max_iterations < 3 || max_iterations > 1000)
    fail("max_iterations", "must be in 3..1000, got " + std::to_string(max_iterations));
}

JacobianTracker::JacobianTracker(std::shared_ptr<nn::NoiseModel> model,
                                 diffusion::Schedule schedule, diffusion::PredictionTarget target,
                                 const Tensor& clean, JacobianTrackerOptions options,
                                 const diffusion::GmmOracle* oracle)
    : network_(std::move(model), std::move(schedule), {target}), options_(std::move(options)) {
  options_.validate();
  const diffusion::Schedule& s = network_.schedule();
  for (double snr_db : options_.snr_db) {
    const int64_t t = s.nearest_step(std::pow(10.0, snr_db / 10.0));
    if (std::find(steps_.begin(), steps_.end(), t) != steps_.end()) continue;
    steps_.push_back(t);
    snr_of_step_.push_back(snr_db);
  }
  if (!clean.defined() || clean.ndim() < 2 || clean.size(0) < 1)
    throw std::invalid_argument("JacobianTracker: clean samples must be [n, ...] with n >= 1");
  const int64_t P = options_.probes, n = clean.numel() / clean.size(0);
  if (oracle && oracle->dim() != n)
    throw std::invalid_argument("JacobianTracker: the GMM has dimension " +
                                std::to_string(oracle->dim()) + ", samples have " +
                                std::to_string(n) + " values");
  const Tensor rows = clean.contiguous();
  std::vector<double> x0(static_cast<size_t>(P * n));
  for (int64_t i = 0; i < P; ++i)
    std::copy_n(rows.data() + (i % rows.size(0)) * n, n, x0.data() + i * n);

  std::vector<int64_t> probe_dims = clean.shape().vec();
  probe_dims[0] = P;
  probe_dims.insert(probe_dims.begin(), static_cast<int64_t>(steps_.size()));
  probes_ = Tensor::empty(Shape(probe_dims));
  directions_ = Tensor::zeros(Shape{static_cast<int64_t>(steps_.size()), P, n});
  const Rng root(options_.seed);
  for (size_t k = 0; k < steps_.size(); ++k) {
    const int64_t t = steps_[k];
    Rng noise = root.split(static_cast<uint64_t>(t));
    const std::vector<double> xt = diffusion::noisy_points(s, t, x0, noise);
    std::transform(xt.begin(), xt.end(), probes_.data() + k * P * n,
                   [](double v) { return static_cast<float>(v); });
    TrackedStep c;
    c.t = t;
    c.snr_db = snr_of_step_[k];
    c.log_concave_bound = diffusion::stepwise_cme_log_concave_bound(s, t);
    c.cme_lower = diffusion::stepwise_cme_lower_bound(s, t);
    if (oracle) {
      const diffusion::ExactStepNorms exact =
          diffusion::exact_step_norms(*oracle, probe_points(k).values, t);
      c.exact_cme_max = max_of(exact.cme);
      c.exact_cme_mean = mean_of(exact.cme);
    }
    constants_.push_back(c);
  }
}

diffusion::DoubleBatch JacobianTracker::probe_points(size_t k) const {
  std::vector<int64_t> dims = probes_.shape().vec();
  dims.erase(dims.begin());
  return diffusion::DoubleBatch::from_tensor(
      probes_.narrow(0, static_cast<int64_t>(k), 1).contiguous().view(Shape(dims)));
}

const std::vector<TrackedStep>& JacobianTracker::scan(int64_t step) {
  const int64_t P = options_.probes, n = directions_.size(2);
  lipschitz::KrylovSettings krylov;
  krylov.tolerance = options_.tolerance;
  krylov.max_iterations = options_.max_iterations;
  krylov.max_subspace = options_.max_iterations;
  last_.clear();
  for (size_t k = 0; k < steps_.size(); ++k) {
    const int64_t t = steps_[k];
    krylov.seed = Rng(options_.seed).split(kDirectionStream + static_cast<uint64_t>(t)).next_u64();
    float* warm = directions_.data() + static_cast<int64_t>(k) * P * n;
    const std::vector<double> start(warm, warm + P * n);
    const diffusion::StepJacobianNorms norms =
        diffusion::measure_step_norms(network_, t, probe_points(k), krylov, start);
    // Rounded to float32 as stored, so a resumed run starts from exactly these directions.
    std::transform(norms.mean.direction.begin(), norms.mean.direction.end(), warm,
                   [](double v) { return static_cast<float>(v); });
    TrackedStep m = constants_[k];
    m.mu_max = norms.mean.max();
    m.mu_mean = norms.mean.mean();
    m.eps_max = norms.eps.max();
    m.eps_mean = norms.eps.mean();
    m.converged = norms.mean.converged_count();
    last_.push_back(m);
  }
  last_step_ = step;
  return last_;
}

void JacobianTracker::on_step(const StepInfo& info, nlohmann::json& record) {
  if (info.step % options_.every != 0) return;
  scan(info.step);
  if (info.logging) record.update(metrics());
}

nlohmann::json JacobianTracker::metrics() const {
  nlohmann::json out = nlohmann::json::object();
  if (last_.empty()) return out;
  out["jacobian_step"] = last_step_;
  nlohmann::json steps = nlohmann::json::array();
  for (const TrackedStep& m : last_) {
    nlohmann::json entry = {{"t", m.t},
                            {"snr_db", m.snr_db},
                            {"mu_max", m.mu_max},
                            {"mu_mean", m.mu_mean},
                            {"eps_max", m.eps_max},
                            {"eps_mean", m.eps_mean},
                            {"converged", m.converged},
                            {"log_concave_bound", m.log_concave_bound},
                            {"cme_lower", m.cme_lower}};
    if (m.exact_cme_max) entry["exact_cme_max"] = *m.exact_cme_max;
    if (m.exact_cme_mean) entry["exact_cme_mean"] = *m.exact_cme_mean;
    steps.push_back(std::move(entry));
  }
  out["jacobian"] = std::move(steps);
  return out;
}

NamedTensors JacobianTracker::state_dict() const {
  return {{"probes", probes_}, {"directions", directions_}};
}

void JacobianTracker::load_state_dict(const NamedTensors& state) {
  const std::vector<Tensor> given = match_state_dict("JacobianTracker", state_dict(), state);
  probes_ = given[0].clone();
  directions_ = given[1].clone();
}

}  // namespace dpm::train
