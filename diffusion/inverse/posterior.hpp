#pragma once
// Exact references for y = A x0 + sigma_y n, n ~ N(0, I), under a Gaussian-mixture prior
// x0 ~ sum_k pi_k N(mu_k, C_k) (docs/inverse.md, References): the posterior mean E[x0 | y], the
// LMMSE estimator (the posterior mean under the mixture's moment-matched Gaussian) and least
// squares A^+ y. The operator is made dense once (dense_matrix), so the references suit the
// prior dimensions of dpmlab's GMMs (N up to about a thousand).
//
// y is [rows, m] row-major, every row a measurement through the same operator; the estimates are
// [rows, N]. Errors are std::invalid_argument naming the function and the field: an operator
// whose input size is not the prior's dimension, a y that is not whole rows of m, sigma_y not
// positive and finite.
#include <vector>

#include "datasets/gmm.hpp"
#include "diffusion/inverse/measurement_operator.hpp"

namespace dpm::diffusion::inverse {

// E[x0 | y] = sum_k w_k(y) m_k(y) with w_k proportional to pi_k N(y; A mu_k, S_k),
// S_k = A C_k A^T + sigma_y^2 I (in log space, by a Cholesky factor of S_k), and
// m_k(y) = mu_k + C_k A^T S_k^-1 (y - A mu_k).
std::vector<double> posterior_mean(const datasets::Gmm& prior, MeasurementOperator& op,
                                   const std::vector<double>& y, double sigma_y);

// m + C A^T (A C A^T + sigma_y^2 I)^-1 (y - A m) with m, C the mixture's mean and covariance:
// the best estimator linear (affine) in y. Equals posterior_mean for a one-component prior.
std::vector<double> lmmse(const datasets::Gmm& prior, MeasurementOperator& op,
                          const std::vector<double>& y, double sigma_y);

// The minimum-norm least-squares solution A^+ y (MeasurementOperator::pseudo_inverse); needs no
// prior and no noise level.
std::vector<double> least_squares(MeasurementOperator& op, const std::vector<double>& y);

}  // namespace dpm::diffusion::inverse
