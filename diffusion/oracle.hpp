#pragma once
// GmmOracle: the exact noise predictor of a GMM prior (docs/protocol.md, Lipschitz facts),
//   eps*(x, t) = -sqrt(1 - abar_t) grad log p_t(x),
//   p_t = sum_k pi_k N(sqrt(abar_t) mu_k, S_k),  S_k = abar_t C_k + (1 - abar_t) I,
// and the exact derivatives the Lipschitz audit compares networks with: the Hessian of log p_t,
// the stepwise CME f_t(x) = E[x_{t-1} | x_t = x] = (x + beta_t grad log p_t(x)) / sqrt(alpha_t)
// and its Jacobian J_t = (I + beta_t Hess log p_t) / sqrt(alpha_t).
//
// Every C_k is eigendecomposed once (C_k = Q_k diag(lambda_k) Q_k^T), so at any step
// S_k^-1 = Q_k diag(1 / (abar_t lambda_k + 1 - abar_t)) Q_k^T and log det S_k cost O(N) per
// component: no factorisation per step. Rows go in fixed blocks (in parallel, so results do not
// depend on the thread count): one GEMM against all K eigenbases at once whitens the block for
// every component, a second maps the responsibility-weighted solves back. All maths in double;
// responsibilities in log space.
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/gmm.hpp"
#include "diffusion/noise_predictor.hpp"
#include "diffusion/schedule.hpp"

namespace dpm::diffusion {

class GmmOracle final : public NoisePredictor {
 public:
  // Validates the prior (datasets::Gmm::validate) and eigendecomposes its covariances.
  GmmOracle(datasets::Gmm prior, Schedule schedule);

  const datasets::Gmm& prior() const { return prior_; }
  const Schedule& schedule() const { return schedule_; }
  int64_t dim() const { return prior_.dim; }

  // p_t itself as a GMM (t = 0 is the prior); not rounded to float32.
  datasets::Gmm marginal(int64_t t) const;

  // All on row-major rows x [n, N] in double. Steps: 0..T for the density and its derivatives
  // (t = 0 is the prior), 1..T for eps and the stepwise CME.
  std::vector<double> log_density(const std::vector<double>& x, int64_t t) const;  // [n]
  std::vector<double> score(const std::vector<double>& x, int64_t t) const;  // grad log p_t [n, N]
  std::vector<double> eps(const std::vector<double>& x, int64_t t) const;    // eps* [n, N]
  // Hess log p_t = sum_k w_k ((g_k - g)(g_k - g)^T - S_k^-1) with g = sum_k w_k g_k
  // (docs/protocol.md, Lipschitz facts), written centred so that nothing cancels. [n, N, N],
  // symmetric.
  std::vector<double> hessian(const std::vector<double>& x, int64_t t) const;
  std::vector<double> stepwise_cme(const std::vector<double>& x, int64_t t) const;  // [n, N]
  std::vector<double> stepwise_jacobian(const std::vector<double>& x,
                                        int64_t t) const;  // [n, N, N]
  // ||J_t(x)||_2 per row: the largest |eigenvalue| of the symmetric J_t (LAPACK dsyevd). [n]
  std::vector<double> stepwise_jacobian_norm(const std::vector<double>& x, int64_t t) const;

 private:
  // The per-step quantities, O(K N) to form.
  struct StepTerms {
    double sqrt_abar = 1.0;
    std::vector<double> inverse_variances;  // [K, N]: 1 / (abar lambda_kj + 1 - abar)
    std::vector<double> log_normaliser;     // [K]: log pi_k - (N log 2 pi + log det S_k) / 2
  };
  // One block's work: rows x [rows, N] -> its rows of the output.
  using BlockFn = std::function<void(const double* x, int64_t rows, double* out)>;

  Tensor compute_eps(const Tensor& x, int64_t t) override;
  DoubleBatch compute_eps_double(const DoubleBatch& x, int64_t t) override;

  StepTerms step_terms(int64_t t, int64_t first_step, const char* caller) const;
  // S_k^-1 for every component, [K, N * N].
  std::vector<double> inverse_covariances(const StepTerms& terms) const;
  // Checks x [n, N], then runs `block` on fixed blocks of rows in parallel.
  std::vector<double> map_rows(const std::vector<double>& x, int64_t out_per_row,
                               const BlockFn& block, const char* caller) const;

  // u [rows, K N]: row i, segment k holds D_k^-1 Q_k^T (x_i - sqrt(abar) mu_k) (S_k^-1 r in the
  // eigenbasis of C_k); log_joint [rows, K]: log pi_k + log N(x_i; sqrt(abar) mu_k, S_k).
  void whiten(const double* x, int64_t rows, const StepTerms& terms, double* u,
              double* log_joint) const;
  // Turns log_joint [rows, K] into responsibilities in place; returns log p_t per row.
  void to_responsibilities(double* log_joint, int64_t rows, double* log_density) const;

  void score_block(const double* x, int64_t rows, const StepTerms& terms, double* out) const;
  // out [rows, N] = -sum_k Q_k (w_k u_k) over the (row, component) pairs with w_k > 0 only, one
  // GEMM per component over the rows it holds: in high dimension most responsibilities are
  // exactly 0 (a 784-d GMM's log-joints differ by hundreds of nats), so this skips most of the
  // dense back-map's K N^2 flops per row.
  void back_map_held(const double* u, const double* w, int64_t rows, double* out) const;
  // out [rows, N, N]; inverses from inverse_covariances(terms).
  void hessian_block(const double* x, int64_t rows, const StepTerms& terms,
                     const std::vector<double>& inverses, double* out) const;

  datasets::Gmm prior_;
  Schedule schedule_;
  std::vector<double> eigenbases_;       // [N, K N]: columns k N .. k N + N - 1 hold Q_k
  std::vector<double> eigenvalues_;      // [K, N]
  std::vector<double> projected_means_;  // [K, N]: Q_k^T mu_k
  std::vector<double> log_weights_;      // [K]
};

}  // namespace dpm::diffusion
