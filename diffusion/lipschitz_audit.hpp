#pragma once
// The Lipschitz audit of a trained noise network (docs/protocol.md, Lipschitz facts;
// docs/lipschitz.md): at each step t of a grid, and for the mean-forwarding denoiser D at each
// observation SNR, it puts side by side
//   certified   upper bounds from the network's layer norms (lipschitz_bounds.hpp),
//   empirical   lower bounds: the largest Jacobian norm measured at points x_t ~ p_t
//               (jacobian.hpp), and pairwise ratios ||f(x) - f(x')|| / ||x - x'||,
//   exact       Jacobian norms of the exact maps at the same points, when the data's GMM is known
//               (eps*, the stepwise CME f_t, and the oracle denoiser D*: oracle_jacobian.hpp), and
//   hyperparameter-only bounds of the exact maps, each valid under its stated assumption:
//               c_t (every prior, lower) and 1 / sqrt(alpha_t) (log-concave priors, upper),
// and counts where the exact ||J_t|| exceeds the log-concave bound.
//
// Points: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for clean samples x_0 (rows of
// AuditInputs::clean, reused cyclically when more are needed) and fresh noise per step;
// observations y = x_0 + n, n ~ N(0, I / snr). Everything is seeded by AuditSettings::seed.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/shape.hpp"
#include "autograd/tensor.hpp"
#include "diffusion/jacobian.hpp"
#include "diffusion/lipschitz_bounds.hpp"
#include "diffusion/oracle.hpp"
#include "diffusion/prediction.hpp"

namespace dpm::diffusion {

// How the network's whole denoiser is measured: J v only (forward iteration, the default: the
// J^T u of a whole reverse loop costs a forward with a graph and a backward per step), or Krylov
// norms with both products (jacobian_norms; J^T u step by step through the tape).
enum class DenoiserMethod { forward, krylov };

struct AuditSettings {
  std::vector<int64_t> steps;    // the t grid (1..T); the start step of every SNR is added
  std::vector<double> snr_db;    // observation SNRs for the denoiser
  int64_t samples = 16;          // points per step for eps and mu; observations for D*
  int64_t denoiser_samples = 4;  // observations for the network's whole denoiser (<= samples)
  int64_t oracle_samples = 512;  // points per step for the exact stepwise statistics (GMM only)
  JacobianNormSettings norms;    // eps and mu: tolerance and iterations
  int denoiser_iterations = 3;   // J v products through the whole denoiser
  DenoiserMethod denoiser_method = DenoiserMethod::forward;
  bool authors_offset = false;    // the denoiser starts at t_hat - 1 (the authors' code)
  double layer_tolerance = 1e-6;  // of the layer norms behind the certified bounds
  uint64_t seed = 0;
};

struct AuditInputs {
  NetworkPredictor* network = nullptr;
  Shape sample_shape;           // one sample as the network takes it, e.g. [1, 64]
  Tensor clean;                 // [n, ...] clean samples x_0 (each row sample_shape.numel() values)
  std::string clean_source;     // where they come from, in words
  GmmOracle* oracle = nullptr;  // the data's exact prior, when known
};

// Max and mean of per-point values.
struct PointStatistics {
  double max = 0, mean = 0;
  int64_t count = 0;
  static PointStatistics of(const std::vector<double>& values);
};

struct StepAudit {
  int64_t t = 0;
  double beta = 0, alpha = 0, abar = 0;
  // Hyperparameter facts about the exact stepwise CME.
  double cme_lower = 0;              // c_t: ||J_t(x)|| >= c_t at every x, every prior
  double cme_log_concave_upper = 0;  // 1 / sqrt(alpha_t): ||J_t(x)|| <= it, log-concave priors
  // Certified upper bounds on the network (NaN when the network has none).
  double certified_eps = 0, certified_mean = 0;
  // Empirical: measured ||J(x)|| of the network at the points (lower bounds on Lip).
  PointStatistics empirical_eps, empirical_mean;
  int64_t eps_converged = 0, mean_converged = 0;
  int iterations = 0;
  // Pairwise ratios ||f(x) - f(x')|| / ||x - x'||, max: x' = x + 0.01 max(||x||, 1) v along the
  // measured top direction v (nearby), and all pairs of points (random).
  double eps_nearby = 0, eps_random = 0, mean_nearby = 0, mean_random = 0;
  // Exact (GMM only): at the audit points, and over oracle_samples points.
  bool exact = false;
  PointStatistics exact_eps, exact_cme;  // ||J_eps*(x)||, ||J_t(x)|| at the audit points
  PointStatistics exact_cme_population;  // ||J_t(x)|| over the population points
  double exceed_fraction = 0;            // of population points with ||J_t|| > 1 / sqrt(alpha_t)
  double exceed_max_ratio = 0;           // max ||J_t|| sqrt(alpha_t): > 1 where the bound fails
  double lower_min_ratio = 0;  // min ||J_t|| / c_t (>= 1 by the lower bound; NaN at t = 1)
};

struct DenoiserAudit {
  double snr_db = 0, snr = 0;
  int64_t matched_step = 0, start_step = 0;
  double scale = 0;              // s = sqrt(snr / (1 + snr)), the input scaling
  double log_concave_bound = 0;  // s / sqrt(abar_ts): Lip(D) <= it for log-concave priors
  double log10_certified = 0;    // log10 of s prod Lip(mu_theta) (NaN when there is none)
  PointStatistics empirical;     // the measured ||J_D(y)|| of the network's D (a lower bound)
  int iterations = 0;
  double pairwise_random = 0;  // max over pairs of observations
  int64_t network_evaluations = 0;
  bool exact = false;
  PointStatistics exact_norm;  // ||J_D*(y)||, exact, at `samples` observations
  double exceed_fraction = 0;  // of them above log_concave_bound
  // The network's method (denoiser_method) applied to D* at the network's observations, divided
  // by D*'s exact norm there: how much of the norm the method finds.
  PointStatistics oracle_forward_ratio;
  double oracle_forward_ratio_min = 0;
};

struct LipschitzAudit {
  AuditSettings settings;
  nlohmann::json network;   // the model config
  std::string target;       // what the network predicts
  nlohmann::json schedule;  // the schedule config
  Shape sample_shape;
  std::string points;  // where the clean samples came from
  CertifiedBounds certified;
  std::vector<StepAudit> steps;
  std::vector<DenoiserAudit> denoisers;
  double seconds = 0;

  // Every number with its kind (certified, empirical, exact, or valid under an assumption) in a
  // "legend"; NaN and infinity are written as null.
  nlohmann::json to_json() const;
  std::string markdown() const;    // the report: legend and three tables
  std::string text_table() const;  // the tables in plain text, for a terminal
};

// done of total units (one per step, one per SNR) and what is being measured.
using AuditProgress = std::function<void(int64_t done, int64_t total, const std::string& stage)>;

LipschitzAudit run_lipschitz_audit(const AuditInputs& inputs, const AuditSettings& settings,
                                   const AuditProgress& progress = {});

}  // namespace dpm::diffusion
