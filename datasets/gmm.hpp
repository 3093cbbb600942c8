#pragma once
// Gaussian mixture ground truth (docs/protocol.md, The GMM protocol): the paper's random GMM,
// exact sampling, log-density, and the estimators of x from y = x + n, n ~ N(0, sigma^2 I): the
// closed-form conditional mean (CME), the LMMSE estimator of the moment-matched Gaussian, and LS
// (y itself). All maths in double; Tensors in and out are float32 [n, N].
//
// Float32 ground truth: Tensor (and so the checkpoint format) is float32-only, so every GMM we
// create (make_random_gmm, Normalization::apply, fit_gmm) rounds its parameters to float32
// (round_to_float32). The in-memory GMM is then exactly the stored one, and every estimator,
// density and sampler works with the very GMM that a saved file holds.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/rng.hpp"
#include "autograd/tensor.hpp"

namespace dpm::datasets {

// Cholesky factors of C_k + sigma2 I for every component: the O(K N^3) part of each density or
// estimator evaluation, computed once per noise variance and reusable across batches.
struct GmmFactors {
  double sigma2 = 0.0;
  std::vector<double> cholesky;  // [K, N, N], lower triangular (upper part zero), row-major
  std::vector<double> log_det;   // [K], log det(C_k + sigma2 I)
};

struct Gmm {
  int64_t dim = 0;                  // N
  int64_t components = 0;           // K
  std::vector<double> weights;      // [K], positive; normalised to sum 1 wherever used
  std::vector<double> means;        // [K, N]
  std::vector<double> covariances;  // [K, N, N], symmetric positive definite

  // Throws std::invalid_argument "<context>: <field> ..." unless sizes agree, the weights are
  // positive and sum to 1 within 1e-5, and every covariance is symmetric positive definite.
  void validate(const std::string& context) const;
  // Rounds every parameter to float32 (see the file comment). Rounding can make a nearly
  // singular positive definite covariance (e.g. fitted with a tiny reg_covar) indefinite; such
  // a covariance gets the smallest diagonal jitter (at most ~4 N eps_f32 max_i C_ii, which bounds
  // the rounding error's norm) that keeps it positive definite. Returns how many needed it.
  int64_t round_to_float32();

  std::vector<double> log_weights() const;         // [K], log of the normalised weights
  std::vector<double> mixture_mean() const;        // [N]
  std::vector<double> mixture_covariance() const;  // [N, N]

  // Factors of every component (in parallel over components). Components that are not
  // numerically positive definite are appended to *failed when it is given; otherwise the first
  // one throws std::invalid_argument naming it.
  GmmFactors factorize(double sigma2, std::vector<int64_t>* failed = nullptr) const;

  // [n, K]: log pi_k + log N(x_i; mu_k, C_k + sigma2 I) for rows x [n, N] (row-major doubles),
  // sigma2 taken from the factors. Parallel over blocks of rows.
  std::vector<double> log_joint(const std::vector<double>& x, const GmmFactors& factors) const;

  // n exact draws [n, N]; with `labels`, also the component of each draw. Deterministic for the
  // state of rng (which advances by one draw): fixed chunks of rows use split streams of it.
  Tensor sample(int64_t n, Rng& rng, std::vector<int>* labels = nullptr) const;

  std::vector<double> log_density(const Tensor& x) const;  // [n], log p(x_i)
  double nll_per_dim(const Tensor& x) const;               // mean_i -log p(x_i) / N (nats)

  // E[x | y] for y = x + n, n ~ N(0, sigma2 I) (docs/protocol.md, The GMM protocol):
  // responsibilities in log space, each component's posterior mean y - sigma2 (C_k + sigma2 I)^-1
  // (y - mu_k) by two BLAS-3 triangular solves per block of rows, blocks in parallel.
  Tensor cme(const Tensor& y, double sigma2) const;
  std::vector<double> cme(const std::vector<double>& y, const GmmFactors& factors) const;

  // m + C (C + sigma2 I)^-1 (y - m) with m, C the mixture's overall mean and covariance.
  Tensor lmmse(const Tensor& y, double sigma2) const;
  std::vector<double> lmmse(const std::vector<double>& y, double sigma2) const;
};

// Covariances of the paper's random GMM.
enum class RandomCovariance {
  // What the authors' code does (scikit-learn's make_spd_matrix): C = U (1 1^T + diag(u)) V^T
  // with U S V^T the SVD of A^T A, A and u uniform(0, 1). numpy's `1.0 + np.diag(u)` adds 1 to
  // every entry, so C = U diag(u) U^T + (U 1)(U 1)^T: N - 1 eigenvalues in about (0, 1) and one
  // of about N along a random direction, not the [1, 2] its docstring states. This construction
  // reproduces the reference NMSE figures of docs/protocol.md, The GMM protocol (CME 0.269 vs
  // LMMSE 0.465 at 0 dB).
  paper,
  // The docstring's wording taken literally: Haar eigenbasis, eigenvalues uniform in [1, 2]. The
  // components then overlap so much that the mixture is nearly Gaussian (CME ~ LMMSE ~ 0.50 at
  // 0 dB for N = 64, K = 128).
  uniform_spectrum,
};

// The paper's random GMM: K covariances of the given kind; weights uniform(0, 1) normalised;
// means standard normal / sqrt(N). Rounded to float32.
Gmm make_random_gmm(Rng& rng, int64_t dim = 64, int64_t components = 128,
                    RandomCovariance kind = RandomCovariance::paper);

// LS estimate: y itself (no copy).
Tensor ls(const Tensor& y);

// sum ||x - x_hat||^2 / sum ||x||^2 over all rows, accumulated in double.
double nmse(const Tensor& x, const Tensor& x_hat);

// Noise variance for an SNR in dB on unit-power data: SNR = 1 / sigma^2.
double snr_db_to_sigma2(double snr_db);

// Zero-mean, unit-average-power normalisation fitted on training data (docs/protocol.md, The GMM
// protocol): x <- (x - m) / c with c = sqrt(mean_i ||x_i - m||^2 / N).
struct Normalization {
  std::vector<double> mean;  // [N]
  double scale = 1.0;        // c

  static Normalization fit(const Tensor& train);
  Tensor apply(const Tensor& x) const;
  // The same map on a GMM (mu <- (mu - m) / c, C <- C / c^2), rounded to float32: the returned
  // GMM is the distribution of the normalised data.
  Gmm apply(const Gmm& gmm) const;
};

// Checkpoint I/O. load_gmm validates (Gmm::validate) and names the file in every error.
void save_gmm(const Gmm& gmm, const std::string& path);
Gmm load_gmm(const std::string& path);

}  // namespace dpm::datasets
