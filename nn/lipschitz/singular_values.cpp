#include "nn/lipschitz/singular_values.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/rng.hpp"

namespace dpm::lipschitz {
namespace {

constexpr double kUnknown = std::numeric_limits<double>::infinity();

double row_norm(const double* row, int64_t n) {
  double sum = 0.0;
  for (int64_t e = 0; e < n; ++e) sum += row[e] * row[e];
  return std::sqrt(sum);
}

// Scales every row of v [B, n] to unit norm; a zero (or non-finite) row is replaced by
// `fallback`'s row.
void normalize_rows(std::vector<double>& v, int64_t n, const std::vector<double>& fallback) {
  const int64_t rows = static_cast<int64_t>(v.size()) / n;
  for (int64_t i = 0; i < rows; ++i) {
    double* row = v.data() + i * n;
    const double norm = row_norm(row, n);
    if (norm > 0 && std::isfinite(norm))
      for (int64_t j = 0; j < n; ++j) row[j] /= norm;
    else
      std::copy_n(fallback.data() + i * n, n, row);
  }
}

std::vector<double> random_unit_rows(int64_t rows, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(static_cast<size_t>(rows * n));
  for (double& x : v) x = rng.normal();
  normalize_rows(v, n, std::vector<double>(v.size(), 1.0 / std::sqrt(static_cast<double>(n))));
  return v;
}

void check_request(const LinearOperator& op, const std::vector<AffineCombination>& maps,
                   const KrylovSettings& settings, const std::vector<double>& start) {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("top_singular_values: " + what);
  };
  if (maps.empty()) fail("no maps to measure");
  if (settings.tolerance < 0 || settings.confirmations < 1 || settings.min_iterations < 1 ||
      settings.max_iterations < settings.min_iterations)
    fail(
        "need tolerance >= 0, confirmations >= 1 and 1 <= min_iterations <= max_iterations, "
        "got " +
        std::to_string(settings.tolerance) + ", " + std::to_string(settings.confirmations) + ", " +
        std::to_string(settings.min_iterations) + ", " + std::to_string(settings.max_iterations));
  if (settings.max_subspace < 2)
    fail("need max_subspace >= 2, got " + std::to_string(settings.max_subspace));
  if (maps.size() > 1 && settings.max_iterations > settings.max_subspace)
    fail("several maps share one subspace, which cannot restart: need max_iterations <= " +
         std::to_string(settings.max_subspace) + " (max_subspace), got " +
         std::to_string(settings.max_iterations));
  for (const AffineCombination& map : maps)
    if (map.identity != 0 && op.input_dim() != op.output_dim())
      fail("a map with an identity term needs a square operator, got " +
           std::to_string(op.output_dim()) + " x " + std::to_string(op.input_dim()));
  const auto values = static_cast<size_t>(op.batch() * op.input_dim());
  if (!start.empty() && start.size() != values)
    fail("start must hold " + std::to_string(op.batch()) + " x " + std::to_string(op.input_dim()) +
         " values, got " + std::to_string(start.size()));
}

// basis[k] [B, n] orthonormal per row across k; images[k] [B, m] = A basis[k].
struct KrylovSubspace {
  std::vector<std::vector<double>> basis, images;
  int64_t n = 0, m = 0;

  int64_t size() const { return static_cast<int64_t>(basis.size()); }
  // Entry e of column c of M V for row i: a v + b A v (b A v alone when a = 0, as then A may
  // not be square).
  double mapped(const AffineCombination& map, int64_t c, int64_t i, int64_t e) const {
    const double image = images[c][i * m + e];
    return map.identity == 0 ? map.scale * image
                             : map.identity * basis[c][i * n + e] + map.scale * image;
  }
  int64_t mapped_size(const AffineCombination& map) const { return map.identity == 0 ? m : n; }
};

// What top_singular_values keeps per map besides the values it returns.
struct MapProgress {
  TopSingularValues values;
  std::vector<double> change;             // [B]: sigma's last relative change (infinite: none)
  std::vector<int> confirmed;             // [B]: iterations in a row within tolerance
  std::vector<double> candidate;          // [B]: sigma when the current run began
  std::vector<std::vector<double>> gram;  // per row: (M V)^T (M V), lower triangle packed
  std::vector<std::vector<double>> ritz;  // per row: the top right singular vector y of M V
};

std::vector<MapProgress> start_progress(size_t maps, int64_t rows, int64_t n, int64_t m) {
  const auto count = static_cast<size_t>(rows);
  std::vector<MapProgress> progress(maps);
  for (MapProgress& map : progress) {
    map.values.sigma.assign(count, 0.0);
    map.values.remaining_error.assign(count, kUnknown);
    map.values.converged.assign(count, 0);
    map.values.direction.assign(count * static_cast<size_t>(n), 0.0);
    map.values.left.assign(count * static_cast<size_t>(m), 0.0);
    map.change.assign(count, kUnknown);
    map.confirmed.assign(count, 0);
    map.candidate.assign(count, 0.0);
    map.gram.assign(count, {});
    map.ritz.assign(count, {});
  }
  return progress;
}

// Appends the Gram row of the newest basis column to row i's packed lower triangle.
void extend_gram(const AffineCombination& map, const KrylovSubspace& subspace, int64_t i,
                 std::vector<double>& gram) {
  const int64_t a = subspace.size() - 1, size = subspace.mapped_size(map);
  for (int64_t b = 0; b <= a; ++b) {
    double sum = 0.0;
    for (int64_t e = 0; e < size; ++e)
      sum += subspace.mapped(map, a, i, e) * subspace.mapped(map, b, i, e);
    gram.push_back(sum);
  }
}

// The Ritz step of one map on row i: returns sigma, the largest singular value of M V, writes
// direction V y [n] and left M V y / sigma [m or n], and keeps y.
double top_ritz_pair(const AffineCombination& map, const KrylovSubspace& subspace, int64_t i,
                     MapProgress& progress) {
  const int64_t k = subspace.size(), n = subspace.n, size = subspace.mapped_size(map);
  const size_t columns = subspace.basis.size();
  std::vector<double> gram(columns * columns);
  const std::vector<double>& packed = progress.gram[i];
  for (int64_t a = 0, p = 0; a < k; ++a)
    for (int64_t b = 0; b <= a; ++b, ++p) gram[a * k + b] = gram[b * k + a] = packed[p];
  std::vector<double> eigenvalues(columns);
  if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', static_cast<lapack_int>(k), gram.data(),
                     static_cast<lapack_int>(k), eigenvalues.data()) != 0)
    throw std::runtime_error("top_singular_values: eigen-solve of a Ritz Gram matrix failed");
  // The top eigenvector y is the last column.
  const double sigma = std::sqrt(std::max(eigenvalues[k - 1], 0.0));
  double* direction = progress.values.direction.data() + i * n;
  double* left = progress.values.left.data() + i * size;
  std::fill_n(direction, n, 0.0);
  std::fill_n(left, size, 0.0);
  std::vector<double>& y = progress.ritz[i];
  y.resize(columns);
  for (int64_t c = 0; c < k; ++c) {
    y[c] = gram[c * k + (k - 1)];
    for (int64_t e = 0; e < n; ++e) direction[e] += y[c] * subspace.basis[c][i * n + e];
    for (int64_t e = 0; e < size; ++e)
      left[e] += y[c] * subspace.mapped(map, c, i, e) / (sigma > 0 ? sigma : 1.0);
  }
  return sigma;
}

// Records row i's sigma at `iteration`; returns whether the row has converged on the map. A row
// whose extrapolated error is within tolerance becomes a candidate at that sigma; it has
// converged once `confirmations` iterations in a row (the candidate's included) stay within
// tolerance of it. Its remaining error is then the larger of the candidate's estimate and that
// drift, and is kept: later changes are at the level of the operator's own noise (a
// finite-difference Jacobian), whose ratios say nothing.
bool record_sigma(MapProgress& map, int64_t i, double sigma, int iteration,
                  const KrylovSettings& settings) {
  TopSingularValues& values = map.values;
  if (iteration > 1 && !values.converged[i]) {
    const double previous = map.change[i];
    map.change[i] = relative_change(values.sigma[i], sigma);
    const double estimate = extrapolated_error(map.change[i], previous);
    const double drift = map.confirmed[i] > 0 ? relative_change(map.candidate[i], sigma) : kUnknown;
    if (drift <= settings.tolerance) {
      ++map.confirmed[i];
      values.remaining_error[i] = std::max(values.remaining_error[i], drift);
    } else {
      map.confirmed[i] = estimate <= settings.tolerance ? 1 : 0;
      map.candidate[i] = sigma;
      values.remaining_error[i] = estimate;
    }
  }
  values.sigma[i] = sigma;
  values.converged[i] = map.confirmed[i] >= settings.confirmations;
  return values.converged[i];
}

// The subspace has grown by one column: extend every Gram matrix, then the Ritz step and the
// bookkeeping for every map and row. Returns whether every row has converged on every map.
bool update_values(const std::vector<AffineCombination>& maps, const KrylovSubspace& subspace,
                   int64_t rows, int iteration, const KrylovSettings& settings,
                   std::vector<MapProgress>& progress) {
  bool all_converged = true;
  for (size_t j = 0; j < maps.size(); ++j) {
    MapProgress& map = progress[j];
    map.values.iterations = iteration;
    for (int64_t i = 0; i < rows; ++i) {
      extend_gram(maps[j], subspace, i, map.gram[i]);
      const double sigma = top_ritz_pair(maps[j], subspace, i, map);
      const bool converged = record_sigma(map, i, sigma, iteration, settings);
      all_converged = all_converged && converged;
    }
  }
  return all_converged;
}

// A subspace spanning R^n makes the Ritz values exact: nothing is left to add.
void mark_exact(std::vector<MapProgress>& progress) {
  for (MapProgress& map : progress) {
    std::fill(map.values.remaining_error.begin(), map.values.remaining_error.end(), 0.0);
    std::fill(map.values.converged.begin(), map.values.converged.end(), 1);
  }
}

// Per row, the map whose left vector seeds the next direction: the next one in turn (starting
// from this iteration's) that the row has not converged on.
std::vector<size_t> choose_maps(const std::vector<MapProgress>& progress, int iteration,
                                int64_t rows) {
  std::vector<size_t> chosen(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    size_t j = static_cast<size_t>(iteration) % progress.size();
    for (size_t tried = 0; tried < progress.size() && progress[j].values.converged[i]; ++tried)
      j = (j + 1) % progress.size();
    chosen[i] = j;
  }
  return chosen;
}

// Writes column [n] minus its projection on row i's basis, scaled to unit norm, to out [n].
// Gram-Schmidt is repeated twice; a column already inside the subspace (an invariant subspace:
// the Ritz values are exact) is replaced by a random one.
void orthonormalize(std::vector<double>& column, const KrylovSubspace& subspace, int64_t i,
                    Rng& rng, double* out) {
  const int64_t k = subspace.size(), n = subspace.n;
  for (int attempt = 0;; ++attempt) {
    const double before = row_norm(column.data(), n);
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t c = 0; c < k; ++c) {
        const double* q = subspace.basis[c].data() + i * n;
        double dot = 0.0;
        for (int64_t e = 0; e < n; ++e) dot += q[e] * column[e];
        for (int64_t e = 0; e < n; ++e) column[e] -= dot * q[e];
      }
    const double after = row_norm(column.data(), n);
    if (after > 1e-8 * before && after > 0) {
      for (int64_t e = 0; e < n; ++e) out[e] = column[e] / after;
      return;
    }
    if (attempt > 8)
      throw std::runtime_error("top_singular_values: cannot extend the subspace of row " +
                               std::to_string(i));
    for (double& x : column) x = rng.normal();
  }
}

// The next basis vectors [B, n]: each row grows its subspace by M^T u for one map (see
// choose_maps), u that map's left vector, made orthonormal to the row's basis.
std::vector<double> next_directions(LinearOperator& op, const std::vector<AffineCombination>& maps,
                                    const std::vector<MapProgress>& progress,
                                    const KrylovSubspace& subspace, int iteration, Rng& rng) {
  const int64_t rows = op.batch(), n = subspace.n, m = subspace.m;
  const std::vector<size_t> chosen = choose_maps(progress, iteration, rows);
  std::vector<double> seeds(static_cast<size_t>(rows * m));
  for (int64_t i = 0; i < rows; ++i) {
    const MapProgress& map = progress[chosen[i]];
    const int64_t size = subspace.mapped_size(maps[chosen[i]]);
    std::copy_n(map.values.left.data() + i * size, size, seeds.data() + i * m);
  }
  const std::vector<double> pulled = op.adjoint(seeds);
  std::vector<double> v(static_cast<size_t>(rows * n), 0.0);
  std::vector<double> column(static_cast<size_t>(n));
  for (int64_t i = 0; i < rows; ++i) {
    const AffineCombination& map = maps[chosen[i]];
    for (int64_t e = 0; e < n; ++e)
      column[e] = map.identity == 0
                      ? map.scale * pulled[i * n + e]
                      : map.identity * seeds[i * n + e] + map.scale * pulled[i * n + e];
    orthonormalize(column, subspace, i, rng, v.data() + i * n);
  }
  return v;
}

// A full subspace of the single map restarts from its top Ritz vector V y, whose image A V y is
// known: a restart costs no product. The Gram matrix is rebuilt for the one column.
void restart(const AffineCombination& map, KrylovSubspace& subspace, MapProgress& progress) {
  const int64_t rows = static_cast<int64_t>(progress.ritz.size()), n = subspace.n, m = subspace.m;
  std::vector<double> basis(static_cast<size_t>(rows * n), 0.0);
  std::vector<double> image(static_cast<size_t>(rows * m), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const std::vector<double>& y = progress.ritz[i];
    for (int64_t c = 0; c < subspace.size(); ++c) {
      for (int64_t e = 0; e < n; ++e) basis[i * n + e] += y[c] * subspace.basis[c][i * n + e];
      for (int64_t e = 0; e < m; ++e) image[i * m + e] += y[c] * subspace.images[c][i * m + e];
    }
    const double norm = row_norm(basis.data() + i * n, n);  // 1 up to rounding
    for (int64_t e = 0; e < n; ++e) basis[i * n + e] /= norm;
    for (int64_t e = 0; e < m; ++e) image[i * m + e] /= norm;
  }
  subspace.basis.assign(1, std::move(basis));
  subspace.images.assign(1, std::move(image));
  for (int64_t i = 0; i < rows; ++i) {
    progress.gram[i].clear();
    extend_gram(map, subspace, i, progress.gram[i]);
  }
}

}  // namespace

double TopSingularValues::max() const {
  double m = 0.0;
  for (double s : sigma) m = std::max(m, s);
  return m;
}

double TopSingularValues::mean() const {
  double sum = 0.0;
  for (double s : sigma) sum += s;
  return sigma.empty() ? 0.0 : sum / static_cast<double>(sigma.size());
}

int64_t TopSingularValues::converged_count() const {
  return std::count(converged.begin(), converged.end(), 1);
}

std::vector<TopSingularValues> top_singular_values(LinearOperator& op,
                                                   const std::vector<AffineCombination>& maps,
                                                   const KrylovSettings& settings,
                                                   const std::vector<double>& start) {
  check_request(op, maps, settings, start);
  const int64_t rows = op.batch(), n = op.input_dim(), m = op.output_dim();
  std::vector<MapProgress> progress = start_progress(maps.size(), rows, n, m);
  KrylovSubspace subspace{{}, {}, n, m};
  Rng rng(settings.seed);
  std::vector<double> v = random_unit_rows(rows, n, rng.next_u64());
  if (!start.empty()) {
    std::vector<double> random = std::move(v);
    v = start;
    normalize_rows(v, n, random);
  }
  for (int iteration = 1;; ++iteration) {
    subspace.images.push_back(op.apply(v));
    subspace.basis.push_back(std::move(v));
    const bool all_converged = update_values(maps, subspace, rows, iteration, settings, progress);
    if (subspace.size() == n) {
      mark_exact(progress);
      break;
    }
    if (iteration >= settings.min_iterations &&
        (all_converged || iteration >= settings.max_iterations))
      break;
    v = next_directions(op, maps, progress, subspace, iteration, rng);
    if (subspace.size() == settings.max_subspace) restart(maps.front(), subspace, progress.front());
  }
  std::vector<TopSingularValues> out;
  out.reserve(progress.size());
  for (MapProgress& map : progress) out.push_back(std::move(map.values));
  return out;
}

TopSingularValues top_singular_value(LinearOperator& op, const KrylovSettings& settings,
                                     const std::vector<double>& start) {
  return std::move(top_singular_values(op, {AffineCombination{}}, settings, start).front());
}

TopSingularValues forward_iteration(LinearOperator& op, int iterations, uint64_t seed) {
  if (iterations < 1)
    throw std::invalid_argument("forward_iteration: need iterations >= 1, got " +
                                std::to_string(iterations));
  if (op.input_dim() != op.output_dim())
    throw std::invalid_argument("forward_iteration: needs a square operator, got " +
                                std::to_string(op.output_dim()) + " x " +
                                std::to_string(op.input_dim()));
  const int64_t rows = op.batch(), n = op.input_dim();
  const auto count = static_cast<size_t>(rows);
  TopSingularValues out;
  out.sigma.assign(count, 0.0);
  out.remaining_error.assign(count, kUnknown);
  out.converged.assign(count, 0);
  std::vector<double> v = random_unit_rows(rows, n, seed);
  out.direction = v;
  for (int k = 0; k < iterations; ++k) {
    std::vector<double> w = op.apply(v);
    ++out.iterations;
    for (int64_t i = 0; i < rows; ++i) {
      const double sigma = row_norm(w.data() + i * n, n);
      if (sigma > out.sigma[i]) {
        out.sigma[i] = sigma;
        std::copy_n(v.data() + i * n, n, out.direction.data() + i * n);
      }
    }
    normalize_rows(w, n, v);
    v = std::move(w);
  }
  return out;
}

double relative_change(double previous_sigma, double sigma) {
  return sigma > 0 ? std::abs(sigma - previous_sigma) / sigma : 0.0;
}

double extrapolated_error(double change, double previous_change) {
  const double rate = change / previous_change;
  return change == 0                                  ? 0.0
         : std::isfinite(previous_change) && rate < 1 ? change * rate / (1 - rate)
                                                      : std::numeric_limits<double>::infinity();
}

}  // namespace dpm::lipschitz
