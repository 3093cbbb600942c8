#pragma once
// The one solver for operator norms in dpmlab: the largest singular value of every row's map of a
// LinearOperator (autograd/linear_operator.hpp), by power iteration on M^T M accelerated by
// Rayleigh-Ritz over the subspace its iterates span (Golub-Kahan-Lanczos with full
// reorthogonalisation). It measures layer weights (operator_norm.hpp: DenseMap, ConvMap; the
// spectral tracker and spectral normalisation, through power_iterate) and the per-sample
// Jacobians of a denoiser (diffusion/jacobian.hpp).
//
// The subspace V (orthonormal per row) grows by one direction per iteration, M^T u with u the
// current top left Ritz vector, and sigma = sigma_max(M V) = max ||M v|| over unit v in span V.
// It is the power iteration's Krylov space, so sigma is never below the plain power iterate's
// value from the same start and converges much faster when the top singular values crowd
// together (a convolution's do). sigma is a lower estimate of ||M|| that rises to it.
//
// Several maps M = a I + b A of one square operator A are measured together: M V = a V + b A V,
// so one A v per iteration serves all of them (a denoiser's eps and mu share one subspace); the
// direction added per row comes from the maps not yet converged, in turn.
#include <cstdint>
#include <vector>

#include "autograd/linear_operator.hpp"

namespace dpm::lipschitz {

// One of the maps measured from one operator A: identity I + scale A (identity != 0 needs a
// square A).
struct AffineCombination {
  double identity = 0.0;
  double scale = 1.0;
};

struct KrylovSettings {
  // Per row and map: done once the relative error of sigma, extrapolated from its last two
  // changes (extrapolated_error), is at most this, and sigma then stays within this of its value
  // there for `confirmations` iterations in all (that one included); 0: run max_iterations.
  // Sigma is still updated afterwards (the subspace keeps growing while other rows or maps
  // converge). A Krylov iteration can stall on a cluster of singular values below the top one
  // and then jump: one small extrapolated error does not tell a stall from convergence
  // (tests/test_spectral.cpp has such a layer).
  double tolerance = 1e-3;
  int confirmations = 3;
  int min_iterations = 3;   // A v products at least
  int max_iterations = 30;  // A v products at most
  // The largest subspace kept: when full, the iteration restarts from the current top Ritz
  // vector (whose image is known, so a restart costs no product). Bounds the memory to
  // 2 max_subspace vectors per row on large layers. Only one map may be measured when a restart
  // can happen (max_iterations > max_subspace).
  int max_subspace = 64;
  uint64_t seed = 0;  // of the initial directions where no start is given
};

struct TopSingularValues {
  // Per row: max ||M v|| over unit v in the subspace explored, a lower estimate of ||M||.
  std::vector<double> sigma;
  std::vector<double> remaining_error;  // extrapolated relative error (infinite: unknown)
  std::vector<char> converged;
  std::vector<double> direction;  // [B, n]: the unit v attaining sigma
  std::vector<double> left;       // [B, m]: M v / sigma at that v (a consistent triple)
  int iterations = 0;             // A v products made

  double max() const;
  double mean() const;
  int64_t converged_count() const;
};

// Every map's top singular value per row. `start` [B, n], when given, holds the first direction
// of each row (warm start; a zero row is replaced by a random one), otherwise directions are
// random (settings.seed). Runs until every row and map has converged (after min_iterations) or
// max_iterations products were made; one A^T u per further iteration.
std::vector<TopSingularValues> top_singular_values(LinearOperator& op,
                                                   const std::vector<AffineCombination>& maps,
                                                   const KrylovSettings& settings,
                                                   const std::vector<double>& start = {});
// The single map A.
TopSingularValues top_singular_value(LinearOperator& op, const KrylovSettings& settings,
                                     const std::vector<double>& start = {});

// With A v only, for maps whose A^T u is too costly (a whole denoiser): v <- A v / ||A v|| from
// a random unit v, `iterations` products; sigma per row is the largest ||A v|| met. Each is a
// lower bound on ||A|| (v is a unit vector); the iterates approach the spectral radius, which can
// fall short of the norm for a non-normal A. converged stays 0, remaining_error infinite, left
// empty. Needs a square A.
TopSingularValues forward_iteration(LinearOperator& op, int iterations, uint64_t seed);

// The stopping rule. The relative change of sigma over one update (0 when sigma is 0):
double relative_change(double previous_sigma, double sigma);
// The relative error of sigma still to go, extrapolated from its last two relative changes
// (power iteration converges geometrically): change * rate / (1 - rate) with
// rate = change / previous_change; 0 when sigma did not move; infinite when previous_change is
// unknown (infinite) or the changes are not shrinking. The last change alone understates the
// error by 1 / (1 - rate) when the top singular values are close.
double extrapolated_error(double change, double previous_change);

}  // namespace dpm::lipschitz
