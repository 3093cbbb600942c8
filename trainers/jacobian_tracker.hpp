#pragma once
// JacobianTracker: a trainer callback that measures, every `every` steps, the empirical Lipschitz
// constants of the network's reverse mean mu_theta(., t) and noise prediction eps_theta(., t) at a
// few fixed steps t (the steps matched to observation SNRs, by default -10, 0, 10 and 20 dB), on
// a fixed probe set of points x_t, the way the Lipschitz audit measures them
// (diffusion/step_norms.hpp): the largest singular value of each point's Jacobian by a Krylov
// power iteration, warm-started from the previous scan's top directions, so a scan costs a few
// network passes per step. Beside each measurement goes what does not change with training: the
// bounds of the exact stepwise CME that depend only on the schedule, c_t (lower, every prior) and
// 1 / sqrt(alpha_t) (upper, log-concave priors), and, when the data's GMM is known, the exact
// CME's Jacobian norms at the same probe points.
//
// A metrics line of a scan step carries
//   "jacobian_step": 1000,
//   "jacobian": [{"t": 29, "snr_db": -10, "mu_max": 1.02, "mu_mean": 1.01, "eps_max": 0.9,
//                 "eps_mean": 0.6, "converged": 8, "log_concave_bound": 1.004,
//                 "cme_lower": 0.99, "exact_cme_max": 1.03, "exact_cme_mean": 1.0}, ...]
// (exact_* only with a GMM). A scan is logged when its step writes a metrics line, so `every`
// should be a multiple of the trainer's log_every.
//
// Probe points and warm directions are held in float32 and are the tracker's resume state, so a
// resumed run measures bitwise what the uninterrupted one does. The network is measured in eval
// mode with its current (not EMA-averaged) weights; the training's gradients and RNG streams are
// not touched.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"
#include "diffusion/schedule.hpp"
#include "nn/lipschitz/singular_values.hpp"
#include "nn/noise_model.hpp"
#include "trainers/trainer.hpp"

namespace dpm::train {

struct JacobianTrackerOptions {
  int64_t every = 250;  // steps between scans
  std::vector<double> snr_db{-10, 0, 10,
                             20};  // tracked steps: t_hat of each SNR (duplicates merged)
  int64_t probes = 8;              // probe points per tracked step
  double tolerance = 1e-3;         // of each measured norm
  int max_iterations = 12;         // Jacobian products per step and scan, at most
  uint64_t seed = 0;               // of the probe noise and the first directions

  void validate() const;  // throws std::invalid_argument naming the field
};

// What one tracked step's scan measured, with the step's constants.
struct TrackedStep {
  int64_t t = 0;
  double snr_db = 0;
  double mu_max = 0, mu_mean = 0, eps_max = 0, eps_mean = 0;
  int64_t converged = 0;  // probe points whose mu norm converged to the tolerance
  double log_concave_bound = 0, cme_lower = 0;
  std::optional<double> exact_cme_max, exact_cme_mean;
};

class JacobianTracker : public Callback {
 public:
  // clean [n, ...]: clean samples in the model's input shape; the first `probes` rows (cycled
  // when fewer) make the probe set. oracle: the data's exact prior, when known (its dimension
  // must match the samples').
  JacobianTracker(std::shared_ptr<nn::NoiseModel> model, diffusion::Schedule schedule,
                  diffusion::PredictionTarget target, const Tensor& clean,
                  JacobianTrackerOptions options, const diffusion::GmmOracle* oracle = nullptr);

  std::string name() const override { return "jacobian"; }
  void on_step(const StepInfo& info, nlohmann::json& record) override;
  // "probes" [steps, P, ...] and "directions" [steps, P, n].
  NamedTensors state_dict() const override;
  void load_state_dict(const NamedTensors& state) override;

  // Scans now, as on_step does at multiples of `every`.
  const std::vector<TrackedStep>& scan(int64_t step);
  const std::vector<TrackedStep>& last_scan() const { return last_; }
  const std::vector<int64_t>& steps() const { return steps_; }
  // The probe points of tracked step number k, [P, ...] in double.
  diffusion::DoubleBatch probe_points(size_t k) const;
  nlohmann::json metrics() const;  // the latest scan's fields (empty before the first scan)

 private:
  diffusion::NetworkPredictor network_;
  JacobianTrackerOptions options_;
  std::vector<int64_t> steps_;
  std::vector<double> snr_of_step_;
  Tensor probes_;                       // [steps, P, ...]
  Tensor directions_;                   // [steps, P, n]; zero rows until the first scan
  std::vector<TrackedStep> constants_;  // the bounds and exact values of each tracked step
  std::vector<TrackedStep> last_;
  int64_t last_step_ = 0;
};

}  // namespace dpm::train
