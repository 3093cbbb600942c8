#include "diffusion/oracle_jacobian.hpp"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/threading.hpp"

namespace dpm::diffusion {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

ExactStepNorms exact_step_norms(const GmmOracle& oracle, const std::vector<double>& x, int64_t t) {
  const Schedule& schedule = oracle.schedule();
  const std::vector<double> hessians = oracle.hessian(x, t);
  const int64_t n = oracle.dim(), rows = static_cast<int64_t>(x.size()) / n;
  const double eps_factor = std::sqrt(1.0 - schedule.abar(t));
  const double beta = schedule.beta(t), cme_factor = 1.0 / std::sqrt(schedule.alpha(t));
  ExactStepNorms out{std::vector<double>(static_cast<size_t>(rows)),
                     std::vector<double>(static_cast<size_t>(rows))};
  // Threads: oneTBB over rows; each eigen-solve runs on one thread. A failed solve leaves NaN
  // (no exception may leave a parallel region).
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> h(static_cast<size_t>(n * n)), eig(static_cast<size_t>(n));
    for (int64_t i = r0; i < r1; ++i) {
      std::copy_n(hessians.data() + i * n * n, n * n, h.begin());
      if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', static_cast<lapack_int>(n), h.data(),
                         static_cast<lapack_int>(n), eig.data()) != 0) {
        out.eps[i] = out.cme[i] = kNaN;
        continue;
      }
      // J_eps* = -sqrt(1 - abar) H and J_t = (I + beta H) / sqrt(alpha) share H's eigenvectors:
      // their norms come from H's extreme eigenvalues.
      out.eps[i] = eps_factor * std::max(std::abs(eig.front()), std::abs(eig.back()));
      out.cme[i] =
          cme_factor * std::max(std::abs(1 + beta * eig.front()), std::abs(1 + beta * eig.back()));
    }
  });
  for (size_t i = 0; i < out.eps.size(); ++i)
    if (std::isnan(out.eps[i]))
      throw std::runtime_error("exact_step_norms: eigen-solve failed for row " + std::to_string(i));
  return out;
}

std::vector<double> exact_denoiser_norms(const GmmOracle& oracle, const std::vector<double>& y,
                                         int64_t start_step, double scale) {
  const int64_t n = oracle.dim(), rows = static_cast<int64_t>(y.size()) / n;
  if (static_cast<int64_t>(y.size()) != rows * n)
    throw std::invalid_argument("exact_denoiser_norms: y does not hold rows of " +
                                std::to_string(n) + " values");
  std::vector<double> x = y, product(static_cast<size_t>(rows * n * n), 0.0);
  for (double& v : x) v *= scale;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t a = 0; a < n; ++a) product[(i * n + a) * n + a] = scale;
  for (int64_t t = start_step; t >= 1; --t) {
    const std::vector<double> jacobians = oracle.stepwise_jacobian(x, t);
    // Threads: oneTBB over rows; each GEMM runs on one thread and writes its own row's product.
    parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<double> next(static_cast<size_t>(n * n));
      for (int64_t i = r0; i < r1; ++i) {
        double* p = product.data() + i * n * n;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                    static_cast<int>(n), static_cast<int>(n), 1.0, jacobians.data() + i * n * n,
                    static_cast<int>(n), p, static_cast<int>(n), 0.0, next.data(),
                    static_cast<int>(n));
        std::copy(next.begin(), next.end(), p);
      }
    });
    x = oracle.stepwise_cme(x, t);
  }
  std::vector<double> norms(static_cast<size_t>(rows));
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> singular(static_cast<size_t>(n)), superb(static_cast<size_t>(n));
    for (int64_t i = r0; i < r1; ++i)
      norms[i] = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', static_cast<lapack_int>(n),
                                static_cast<lapack_int>(n), product.data() + i * n * n,
                                static_cast<lapack_int>(n), singular.data(), nullptr, 1, nullptr, 1,
                                superb.data()) == 0
                     ? singular.front()
                     : kNaN;
  });
  for (size_t i = 0; i < norms.size(); ++i)
    if (std::isnan(norms[i]))
      throw std::runtime_error("exact_denoiser_norms: SVD failed for row " + std::to_string(i));
  return norms;
}

}  // namespace dpm::diffusion
