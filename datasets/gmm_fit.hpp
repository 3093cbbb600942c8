#pragma once
// EM fit of a full-covariance Gaussian mixture to data [n, D] (e.g. Fashion-MNIST, D = 784,
// K = 128): k-means++ seeding and Lloyd iterations, then EM with a covariance floor, per-iteration
// log-likelihood, a tolerance-based stop, and re-seeding of collapsed components.
// E-step: Cholesky-whitened distances by BLAS-3 triangular solves (Gmm::log_joint, parallel over
// blocks of rows); M-step: weighted scatter matrices by blocked SYRK, parallel over components.
#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/gmm.hpp"

namespace dpm::datasets {

struct GmmFitProgress {
  int iteration = 0;            // 1-based
  double log_likelihood = 0.0;  // mean log p(x_i) over the data, nats per sample
  double change = 0.0;          // from the previous iteration (0 at the first)
  int64_t restarts = 0;         // components re-seeded before this iteration's E-step
};

struct GmmFitOptions {
  int64_t components = 128;
  int max_iterations = 100;
  // Stop when |change| of the mean log-likelihood per sample is below this (scikit-learn's tol)
  // in an iteration without restarts.
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
};

struct GmmFitResult {
  Gmm gmm;  // the model whose log-likelihood was measured last, rounded to float32
  std::vector<double> log_likelihood;  // per iteration, as reported to on_iteration
  int iterations = 0;
  bool converged = false;
  int64_t restarts = 0;  // total re-seeded components
};

GmmFitResult fit_gmm(const Tensor& data, const GmmFitOptions& options = {});

}  // namespace dpm::datasets
