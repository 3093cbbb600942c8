#pragma once
// EM fit of a full-covariance Gaussian mixture to data [n, D] (e.g. Fashion-MNIST, D = 784,
// K = 128): k-means++ seeding and Lloyd iterations, then EM with a covariance floor, per-iteration
// log-likelihood, a tolerance-based stop, and re-seeding of collapsed components.
// E-step: Cholesky-whitened distances by BLAS-3 triangular solves (Gmm::log_joint, parallel over
// blocks of rows); M-step: weighted scatter matrices by blocked SYRK, parallel over components.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"

namespace dpm::datasets {

struct GmmFitProgress {
  int iteration = 0;            // 1-based
  double log_likelihood = 0.0;  // mean log p(x_i) over the data, nats per sample
  double change = 0.0;          // from the previous iteration (0 at the first)
  int64_t restarts = 0;         // components re-seeded before this iteration's E-step
  // The iteration's work: its E-step (K triangular solves of n rows, K n D^2 flops) and the
  // M-step that follows it unless it is the last (one D x D scatter per row with a nonzero
  // responsibility, D^2 flops each), and the wall time of both.
  double flops = 0.0;
  double seconds = 0.0;
};

// Where EM stands between two iterations, enough to continue exactly as if never stopped: the
// model the next iteration starts from (after its M-step, before re-seeding collapsed
// components), the random state of the re-seeding, and the history so far.
struct GmmFitState {
  Gmm model;                           // in double, not rounded
  Rng::State rng;                      // the re-seeding stream
  std::vector<double> log_likelihood;  // per completed iteration
  int iterations = 0;                  // completed
  int64_t restarts = 0;                // re-seeded so far
  std::vector<int64_t> last_reseeded;  // the components the last iteration re-seeded
};

struct GmmFitOptions {
  int64_t components = 128;
  int max_iterations = 100;
  // Stop when |change| of the mean log-likelihood per sample is below this (scikit-learn's tol)
  // in an iteration that re-seeds no component the iteration before it did not also re-seed: a
  // component that collapses again every time it is re-seeded cannot hold data, and would
  // otherwise keep the fit from ever stopping (as seen at K = 128 on Fashion-MNIST).
  double tolerance = 1e-3;
  double reg_covar = 1e-6;  // added to every covariance diagonal (scikit-learn's default)
  // A component is collapsed, and re-seeded at a random data point with the data covariance,
  // when its weight falls below this or its covariance is not numerically positive definite.
  double min_weight = 1e-4;
  int kmeans_iterations = 10;  // Lloyd iterations after k-means++ seeding
  uint64_t seed = 0;
  // When set: EM starts from this model (and its K) instead of k-means; `components` is ignored.
  const Gmm* initial = nullptr;
  std::function<void(const GmmFitProgress&)> on_iteration;  // e.g. a CLI progress line
  // After every iteration that is not the last: the state to continue from (e.g. to save it).
  std::function<void(const GmmFitState&)> on_state;
  // When set: continue this state (its model and K; `initial` and `components` are ignored),
  // giving bit for bit the fit an uninterrupted run with the same options and data would.
  const GmmFitState* resume = nullptr;
};

struct GmmFitResult {
  Gmm gmm;  // the model whose log-likelihood was measured last, rounded to float32
  std::vector<double> log_likelihood;  // per iteration, as reported to on_iteration
  int iterations = 0;
  bool converged = false;
  int64_t restarts = 0;  // total re-seeded components
};

GmmFitResult fit_gmm(const Tensor& data, const GmmFitOptions& options = {});

// A GmmFitState file (`dpmlab gmm fit` writes DIR/fit_state.safetensors every iteration): the
// model's weights, means and covariances in double, each as three float32 tensors NAME.hi,
// NAME.mid and NAME.lo whose sum is the double exactly (hi alone is the float32 model); the rest
// and `run` (what made the fit, which a resumed one must match) as JSON in the metadata.
// Written atomically.
void save_gmm_fit_state(const GmmFitState& state, const nlohmann::json& run,
                        const std::string& path);
struct SavedGmmFitState {
  GmmFitState state;
  nlohmann::json run;
};
// Throws std::runtime_error naming the file and what is wrong with it.
SavedGmmFitState load_gmm_fit_state(const std::string& path);

}  // namespace dpm::datasets
