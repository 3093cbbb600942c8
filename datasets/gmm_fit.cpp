#include "datasets/gmm_fit.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "autograd/threading.hpp"
#include "datasets/dense.hpp"

namespace dpm::datasets {
namespace {

constexpr int64_t kBlock = 512;  // rows per BLAS-3 block (scatter, nearest centres)

struct Data {
  std::vector<double> x;  // [n, dim]
  int64_t n = 0;
  int64_t dim = 0;
  const double* row(int64_t i) const { return x.data() + i * dim; }
};

// sum_i r_i (x_i - mean)(x_i - mean)^T over the listed rows (full symmetric [dim, dim] in out),
// by SYRK on blocks of sqrt(r_i)-scaled residuals, accumulated in a fixed block order.
void weighted_scatter(const Data& data, const std::vector<int64_t>& rows,
                      const std::vector<double>& r, const double* mean, double* out) {
  const int64_t dim = data.dim;
  std::fill(out, out + dim * dim, 0.0);
  std::vector<double> block(static_cast<size_t>(kBlock * dim));
  for (size_t b = 0; b < rows.size(); b += kBlock) {
    int64_t m = std::min<int64_t>(kBlock, static_cast<int64_t>(rows.size() - b));
    for (int64_t i = 0; i < m; ++i) {
      double s = std::sqrt(r[b + i]);
      const double* x = data.row(rows[b + i]);
      for (int64_t j = 0; j < dim; ++j) block[i * dim + j] = s * (x[j] - mean[j]);
    }
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, static_cast<int>(dim), static_cast<int>(m),
                1.0, block.data(), static_cast<int>(dim), 1.0, out, static_cast<int>(dim));
  }
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j < i; ++j) out[j * dim + i] = out[i * dim + j];
}

void add_to_diagonal(double* a, int64_t dim, double value) {
  for (int64_t i = 0; i < dim; ++i) a[i * dim + i] += value;
}

// M-step from responsibilities resp [n, K]: weights N_k / n, weighted means and covariances
// plus reg_covar I. Components below min_weight keep their old mean and covariance (they are
// re-seeded next). Returns how many (row, component) pairs the scatter matrices summed.
// Threads: oneTBB over components; each component's parameters are written by one chunk, its
// sums taken over rows in a fixed order.
int64_t m_step(const Data& data, const std::vector<double>& resp, const GmmFitOptions& options,
               Gmm& model) {
  const int64_t K = model.components, dim = data.dim;
  std::vector<int64_t> scattered(static_cast<size_t>(K), 0);
  parallel_for(K, 1, [&](int64_t k0, int64_t k1) {
    std::vector<int64_t> rows;
    std::vector<double> r;
    for (int64_t k = k0; k < k1; ++k) {
      rows.clear();
      r.clear();
      double nk = 0.0;
      for (int64_t i = 0; i < data.n; ++i) {
        double v = resp[i * K + k];
        if (v <= 0.0) continue;  // exact zeros contribute nothing; skipping them is exact
        rows.push_back(i);
        r.push_back(v);
        nk += v;
      }
      model.weights[k] = nk / static_cast<double>(data.n);
      if (model.weights[k] < options.min_weight || nk <= 0.0) continue;
      double* mean = model.means.data() + k * dim;
      std::fill(mean, mean + dim, 0.0);
      for (size_t t = 0; t < rows.size(); ++t) {
        const double* x = data.row(rows[t]);
        for (int64_t j = 0; j < dim; ++j) mean[j] += r[t] * x[j];
      }
      for (int64_t j = 0; j < dim; ++j) mean[j] /= nk;
      double* cov = model.covariances.data() + k * dim * dim;
      weighted_scatter(data, rows, r, mean, cov);
      scattered[k] = static_cast<int64_t>(rows.size());
      for (int64_t j = 0; j < dim * dim; ++j) cov[j] /= nk;
      add_to_diagonal(cov, dim, options.reg_covar);
    }
  });
  int64_t total = 0;
  for (int64_t count : scattered) total += count;
  return total;
}

// Index of the nearest centre of every row, by ||c||^2 - 2 x.c from one GEMM per block of rows.
// Threads: oneTBB over blocks of rows; each label is written by one chunk.
std::vector<int64_t> nearest_centres(const Data& data, const std::vector<double>& centres,
                                     int64_t K) {
  const int64_t dim = data.dim;
  std::vector<double> centre_sq(static_cast<size_t>(K), 0.0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < dim; ++j) centre_sq[k] += centres[k * dim + j] * centres[k * dim + j];
  std::vector<int64_t> labels(static_cast<size_t>(data.n));
  int64_t blocks = (data.n + kBlock - 1) / kBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> dots(static_cast<size_t>(kBlock * K));
    for (int64_t b = b0; b < b1; ++b) {
      int64_t begin = b * kBlock, rows = std::min(data.n, begin + kBlock) - begin;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(K), static_cast<int>(dim), 1.0, data.row(begin),
                  static_cast<int>(dim), centres.data(), static_cast<int>(dim), 0.0, dots.data(),
                  static_cast<int>(K));
      for (int64_t i = 0; i < rows; ++i) {
        int64_t best = 0;
        double best_d = std::numeric_limits<double>::infinity();
        for (int64_t k = 0; k < K; ++k) {
          double d = centre_sq[k] - 2.0 * dots[i * K + k];
          if (d < best_d) best_d = d, best = k;
        }
        labels[begin + i] = best;
      }
    }
  });
  return labels;
}

// k-means++ seeding (each next centre drawn with probability proportional to the squared
// distance to the nearest chosen one), Lloyd iterations, then the M-step of the hard assignment.
Gmm kmeans_init(const Data& data, const GmmFitOptions& options, Rng& rng) {
  const int64_t K = options.components, dim = data.dim, n = data.n;
  std::vector<double> centres(static_cast<size_t>(K * dim));
  std::vector<double> d2(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  int64_t pick = static_cast<int64_t>(rng.integer(static_cast<uint64_t>(n)));
  for (int64_t c = 0; c < K; ++c) {
    if (c > 0) {
      double total = 0.0;
      for (double v : d2) total += v;
      pick = n - 1;
      if (total > 0.0) {
        double u = rng.uniform() * total, cumulative = 0.0;
        for (int64_t i = 0; i < n; ++i)
          if ((cumulative += d2[i]) > u) {
            pick = i;
            break;
          }
      } else {
        pick = static_cast<int64_t>(rng.integer(static_cast<uint64_t>(n)));
      }
    }
    std::copy(data.row(pick), data.row(pick) + dim, centres.begin() + c * dim);
    const double* centre = centres.data() + c * dim;
    // Threads: oneTBB over rows; each distance is written by one chunk.
    parallel_for(n, 1024, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double s = 0.0;
        for (int64_t j = 0; j < dim; ++j) {
          double d = data.row(i)[j] - centre[j];
          s += d * d;
        }
        d2[i] = std::min(d2[i], s);
      }
    });
  }
  std::vector<int64_t> labels = nearest_centres(data, centres, K);
  for (int it = 0; it < options.kmeans_iterations; ++it) {
    std::vector<double> sums(centres.size(), 0.0), counts(static_cast<size_t>(K), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      counts[labels[i]] += 1.0;
      for (int64_t j = 0; j < dim; ++j) sums[labels[i] * dim + j] += data.row(i)[j];
    }
    for (int64_t k = 0; k < K; ++k)
      if (counts[k] > 0.0)  // an empty cluster keeps its centre
        for (int64_t j = 0; j < dim; ++j) centres[k * dim + j] = sums[k * dim + j] / counts[k];
    labels = nearest_centres(data, centres, K);
  }
  Gmm model;
  model.dim = dim;
  model.components = K;
  model.weights.assign(static_cast<size_t>(K), 0.0);
  model.means = centres;
  model.covariances.assign(static_cast<size_t>(K * dim * dim), 0.0);
  std::vector<double> resp(static_cast<size_t>(n * K), 0.0);
  for (int64_t i = 0; i < n; ++i) resp[i * K + labels[i]] = 1.0;
  m_step(data, resp, options, model);
  return model;
}

// Throws std::invalid_argument naming `context` unless the parameters have the sizes K and N
// imply and every value is finite.
void require_finite_parameters(const Gmm& g, const std::string& context) {
  const auto K = static_cast<size_t>(g.components), N = static_cast<size_t>(g.dim);
  if (g.components < 1 || g.dim < 1 || g.weights.size() != K || g.means.size() != K * N ||
      g.covariances.size() != K * N * N)
    throw std::invalid_argument(context + ": parameter sizes do not match K = " +
                                std::to_string(g.components) + ", N = " + std::to_string(g.dim));
  for (const std::vector<double>* values : {&g.weights, &g.means, &g.covariances})
    for (double v : *values)
      if (!std::isfinite(v)) throw std::invalid_argument(context + ": a parameter is not finite");
}

// Re-seeds every collapsed component (weight below min_weight, or covariance not positive
// definite) at a random data point with the data covariance and weight 1/K, renormalises the
// weights, and returns the factors of the repaired model and the re-seeded components.
std::pair<GmmFactors, std::vector<int64_t>> reseed_collapsed(
    const Data& data, const std::vector<double>& data_covariance, const GmmFitOptions& options,
    Rng& rng, Gmm& model) {
  const int64_t K = model.components, dim = data.dim;
  std::vector<int64_t> failed;
  GmmFactors factors = model.factorize(0.0, &failed);
  std::vector<char> collapsed(static_cast<size_t>(K), 0);
  for (int64_t k : failed) collapsed[k] = 1;
  for (int64_t k = 0; k < K; ++k)
    if (model.weights[k] < options.min_weight) collapsed[k] = 1;
  std::vector<int64_t> reseeded;
  for (int64_t k = 0; k < K; ++k) {
    if (!collapsed[k]) continue;
    reseeded.push_back(k);
    const double* seed = data.row(static_cast<int64_t>(rng.integer(static_cast<uint64_t>(data.n))));
    std::copy(seed, seed + dim, model.means.begin() + k * dim);
    std::copy(data_covariance.begin(), data_covariance.end(),
              model.covariances.begin() + k * dim * dim);
    model.weights[k] = 1.0 / static_cast<double>(K);
  }
  if (reseeded.empty()) return {std::move(factors), reseeded};
  double sum = 0.0;
  for (double w : model.weights) sum += w;
  for (double& w : model.weights) w /= sum;
  failed.clear();
  factors = model.factorize(0.0, &failed);
  if (!failed.empty())
    throw std::invalid_argument(
        "fit_gmm: the data covariance plus reg_covar I is not positive definite; use a larger "
        "reg_covar (now " +
        std::to_string(options.reg_covar) + ")");
  return {std::move(factors), reseeded};
}

// Throws std::invalid_argument for options that do not fit each other or the data: K against n
// and D, the ranges of the settings, a resumed state with nothing left to do, a start model of
// another dimension.
void check_fit_options(const Data& data, const Gmm* start, const GmmFitOptions& options) {
  const int64_t K = start ? start->components : options.components;
  if (K < 1 || data.n < K || data.dim < 1)
    throw std::invalid_argument(
        "fit_gmm: need D >= 1 and n >= K >= 1, got n = " + std::to_string(data.n) +
        ", D = " + std::to_string(data.dim) + ", K = " + std::to_string(K));
  if (options.max_iterations < 1 || !(options.reg_covar >= 0.0) || !(options.tolerance >= 0.0) ||
      !(options.min_weight > 0.0))
    throw std::invalid_argument(
        "fit_gmm: max_iterations must be >= 1, reg_covar and tolerance >= 0, min_weight > 0");
  if (options.resume && options.resume->iterations >= options.max_iterations)
    throw std::invalid_argument("fit_gmm: the resumed state has " +
                                std::to_string(options.resume->iterations) +
                                " iterations, max_iterations is " +
                                std::to_string(options.max_iterations) + ": nothing is left to do");
  if (!start) return;
  const std::string what = options.resume ? "resumed model" : "initial model";
  // A resumed model may hold collapsed components (zero weight, a singular covariance) that
  // the next iteration re-seeds: only its sizes and finiteness are required.
  if (options.resume)
    require_finite_parameters(*start, "fit_gmm: " + what);
  else
    start->validate("fit_gmm: " + what);
  if (start->dim != data.dim)
    throw std::invalid_argument("fit_gmm: " + what + " has N = " + std::to_string(start->dim) +
                                ", data has D = " + std::to_string(data.dim));
}

// The data covariance plus reg_covar I: the covariance a re-seeded component starts from.
std::vector<double> data_covariance(const Data& data, double reg_covar) {
  std::vector<double> data_mean(static_cast<size_t>(data.dim), 0.0);
  for (int64_t i = 0; i < data.n; ++i)
    for (int64_t j = 0; j < data.dim; ++j) data_mean[j] += data.row(i)[j];
  for (double& m : data_mean) m /= static_cast<double>(data.n);
  std::vector<int64_t> all_rows(static_cast<size_t>(data.n));
  for (int64_t i = 0; i < data.n; ++i) all_rows[i] = i;
  std::vector<double> covariance(static_cast<size_t>(data.dim * data.dim));
  weighted_scatter(data, all_rows, std::vector<double>(all_rows.size(), 1.0), data_mean.data(),
                   covariance.data());
  for (double& c : covariance) c /= static_cast<double>(data.n);
  add_to_diagonal(covariance.data(), data.dim, reg_covar);
  return covariance;
}

// E-step: resp [n, K] = the responsibilities (a softmax over components of the log joint, row
// by row); returns the mean log-likelihood per sample.
double e_step(const Data& data, const Gmm& model, const GmmFactors& factors,
              std::vector<double>& resp) {
  const int64_t K = model.components;
  resp = model.log_joint(data.x, factors);
  std::vector<double> row_log_p(static_cast<size_t>(data.n));
  // Threads: oneTBB over rows; each row is written by one chunk.
  parallel_for(data.n, 1024, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double* r = resp.data() + i * K;
      row_log_p[i] = log_sum_exp(r, K);
      for (int64_t k = 0; k < K; ++k) r[k] = std::exp(r[k] - row_log_p[i]);
    }
  });
  double total = 0.0;
  for (double v : row_log_p) total += v;
  return total / static_cast<double>(data.n);
}

}  // namespace

GmmFitResult fit_gmm(const Tensor& data_tensor, const GmmFitOptions& options) {
  if (!data_tensor.defined() || data_tensor.ndim() != 2)
    throw std::invalid_argument(
        "fit_gmm: data must be [n, D], got " +
        (data_tensor.defined() ? data_tensor.shape().str() : std::string("undefined")));
  Data data;
  data.n = data_tensor.size(0);
  data.dim = data_tensor.size(1);
  data.x = to_double_rows(data_tensor, data.dim, "fit_gmm", "data");
  const Gmm* start = options.resume ? &options.resume->model : options.initial;
  check_fit_options(data, start, options);
  const std::vector<double> reseed_covariance = data_covariance(data, options.reg_covar);

  Rng rng(options.seed);
  Gmm model = start ? *start : kmeans_init(data, options, rng);
  GmmFitResult result;
  int first = 1;
  if (options.resume) {
    rng.set_state(options.resume->rng);
    result.log_likelihood = options.resume->log_likelihood;
    result.iterations = options.resume->iterations;
    result.restarts = options.resume->restarts;
    first = options.resume->iterations + 1;
  }
  std::vector<int64_t> previously_reseeded =
      options.resume ? options.resume->last_reseeded : std::vector<int64_t>{};
  std::vector<double> resp;
  const double dim_squared = static_cast<double>(data.dim) * static_cast<double>(data.dim);
  for (int iteration = first; iteration <= options.max_iterations; ++iteration) {
    const auto start_time = std::chrono::steady_clock::now();
    auto [factors, reseeded] = reseed_collapsed(data, reseed_covariance, options, rng, model);
    const auto restarts = static_cast<int64_t>(reseeded.size());
    // A component re-seeded again right after its last re-seeding cannot hold data; only a new
    // collapse keeps the fit from having settled.
    const bool new_collapse = std::any_of(reseeded.begin(), reseeded.end(), [&](int64_t k) {
      return std::find(previously_reseeded.begin(), previously_reseeded.end(), k) ==
             previously_reseeded.end();
    });
    previously_reseeded = reseeded;
    GmmFitProgress progress;
    progress.iteration = iteration;
    progress.log_likelihood = e_step(data, model, factors, resp);
    progress.change = result.log_likelihood.empty()
                          ? 0.0
                          : progress.log_likelihood - result.log_likelihood.back();
    progress.restarts = restarts;
    result.log_likelihood.push_back(progress.log_likelihood);
    result.iterations = iteration;
    result.restarts += restarts;
    result.converged =
        iteration > 1 && !new_collapse && std::abs(progress.change) < options.tolerance;
    // The model measured last is the result: no M-step after a converged or the last iteration.
    const bool done = result.converged || iteration == options.max_iterations;
    const int64_t scattered = done ? 0 : m_step(data, resp, options, model);
    progress.flops = (static_cast<double>(model.components) * static_cast<double>(data.n) +
                      static_cast<double>(scattered)) *
                     dim_squared;
    progress.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
    if (options.on_iteration) options.on_iteration(progress);
    if (done) break;
    if (options.on_state)
      options.on_state(
          {model, rng.state(), result.log_likelihood, iteration, result.restarts, reseeded});
  }
  model.round_to_float32();
  model.validate("fit_gmm (fitted model rounded to float32)");
  result.gmm = std::move(model);
  return result;
}

namespace {

constexpr const char* kFitStateFormat = "dpmlab gmm fit state";
constexpr const char* kFitStateParts[3] = {"hi", "mid", "lo"};

// x = hi + mid + lo exactly: hi = float(x), mid = float(x - hi), lo = float(x - hi - mid); each
// difference is exact in double and at most 5 bits remain for lo, for any x within float range.
std::vector<Tensor> split_doubles(const std::vector<double>& values, const Shape& shape,
                                  const std::string& path) {
  std::vector<std::vector<float>> parts(3, std::vector<float>(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    double rest = values[i];
    if (!(std::abs(rest) <= std::numeric_limits<float>::max()))
      throw std::runtime_error(path + ": cannot save the fit state: a parameter is " +
                               std::to_string(rest) + ", beyond float range");
    for (auto& part : parts) {
      part[i] = static_cast<float>(rest);
      rest -= part[i];
    }
  }
  std::vector<Tensor> tensors;
  for (auto& part : parts) tensors.push_back(Tensor::from_vector(shape, std::move(part)));
  return tensors;
}

std::vector<double> joined_doubles(const SafeTensors& file, const std::string& name,
                                   const Shape& shape) {
  std::vector<double> values(static_cast<size_t>(shape.numel()), 0.0);
  for (const char* part : kFitStateParts) {
    const std::string tensor = name + "." + part;
    const Tensor& t = file.get(tensor);
    if (t.shape() != shape)
      throw std::runtime_error(file.source + ": tensor '" + tensor + "' has shape " +
                               t.shape().str() + ", expected " + shape.str());
    const Tensor c = t.contiguous();
    for (size_t i = 0; i < values.size(); ++i) values[i] += c.data()[i];
  }
  return values;
}

// The model of a fit state file; throws std::out_of_range for an absent tensor.
void read_fit_state_model(const SafeTensors& file, Gmm& g) {
  const Tensor& means = file.get("means.hi");
  if (means.ndim() != 2)
    throw std::runtime_error(file.source + ": tensor 'means.hi' has shape " + means.shape().str() +
                             ", expected [K, N]");
  g.components = means.size(0);
  g.dim = means.size(1);
  g.weights = joined_doubles(file, "weights", {g.components});
  g.means = joined_doubles(file, "means", {g.components, g.dim});
  g.covariances = joined_doubles(file, "covariances", {g.components, g.dim, g.dim});
  require_finite_parameters(g, file.source);
}

}  // namespace

void save_gmm_fit_state(const GmmFitState& state, const nlohmann::json& run,
                        const std::string& path) {
  const Gmm& g = state.model;
  const int64_t K = g.components, N = g.dim;
  NamedTensors tensors;
  auto add = [&](const std::string& name, const std::vector<double>& values, const Shape& shape) {
    const std::vector<Tensor> parts = split_doubles(values, shape, path);
    for (int i = 0; i < 3; ++i) tensors.push_back({name + "." + kFitStateParts[i], parts[i]});
  };
  add("weights", g.weights, {K});
  add("means", g.means, {K, N});
  add("covariances", g.covariances, {K, N, N});
  nlohmann::json rng = nlohmann::json::array();
  for (uint64_t word : state.rng) rng.push_back(std::to_string(word));  // JSON numbers are doubles
  const nlohmann::json fit = {{"rng", rng},
                              {"log_likelihood", state.log_likelihood},
                              {"iterations", state.iterations},
                              {"restarts", state.restarts},
                              {"last_reseeded", state.last_reseeded}};
  write_safetensors(path, tensors,
                    {{"format", kFitStateFormat}, {"state", fit.dump()}, {"run", run.dump()}});
}

SavedGmmFitState load_gmm_fit_state(const std::string& path) {
  const SafeTensors file = read_safetensors(path);
  auto entry = [&](const char* key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end())
      throw std::runtime_error(path + ": no metadata '" + key + "' (not a fit state of `dpmlab " +
                               "gmm fit`)");
    return it->second;
  };
  if (entry("format") != kFitStateFormat)
    throw std::runtime_error(path + ": metadata 'format' is '" + entry("format") + "', expected '" +
                             kFitStateFormat + "'");
  SavedGmmFitState saved;
  GmmFitState& state = saved.state;
  try {
    saved.run = nlohmann::json::parse(entry("run"));
    const nlohmann::json fit = nlohmann::json::parse(entry("state"));
    const auto rng = fit.at("rng").get<std::vector<std::string>>();
    if (rng.size() != state.rng.size())
      throw std::runtime_error("'rng' has " + std::to_string(rng.size()) + " words, expected " +
                               std::to_string(state.rng.size()));
    for (size_t i = 0; i < rng.size(); ++i) {
      size_t used = 0;
      state.rng[i] = std::stoull(rng[i], &used);
      if (used != rng[i].size()) throw std::runtime_error("'rng' word '" + rng[i] + "'");
    }
    state.log_likelihood = fit.at("log_likelihood").get<std::vector<double>>();
    state.iterations = fit.at("iterations").get<int>();
    state.restarts = fit.at("restarts").get<int64_t>();
    state.last_reseeded = fit.value("last_reseeded", std::vector<int64_t>{});
  } catch (const std::exception& e) {  // JSON errors, std::stoull's, and the checks above
    throw std::runtime_error(path + ": bad fit state metadata: " + e.what());
  }
  if (state.iterations < 1 || state.log_likelihood.size() != static_cast<size_t>(state.iterations))
    throw std::runtime_error(path + ": the fit state has " + std::to_string(state.iterations) +
                             " iterations and " + std::to_string(state.log_likelihood.size()) +
                             " log-likelihoods; expected as many, at least one");
  try {
    read_fit_state_model(file, state.model);
  } catch (const std::out_of_range& e) {  // a tensor absent: the message names it and the file
    throw std::runtime_error(e.what());
  } catch (const std::invalid_argument& e) {  // require_finite_parameters
    throw std::runtime_error(e.what());
  }
  return saved;
}

}  // namespace dpm::datasets
