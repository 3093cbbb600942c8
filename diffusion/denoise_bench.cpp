#include "diffusion/denoise_bench.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <tuple>

#include "autograd/rng.hpp"
#include "datasets/dense.hpp"

namespace dpm::diffusion {
namespace {

// Per-sample squared errors ||x_i - x_hat_i||^2.
std::vector<double> squared_errors(const std::vector<double>& x, const std::vector<double>& x_hat,
                                   int64_t dim) {
  std::vector<double> e(x.size() / static_cast<size_t>(dim), 0.0);
  for (size_t i = 0; i < e.size(); ++i)
    for (int64_t j = 0; j < dim; ++j) {
      const double d = x[i * dim + j] - x_hat[i * dim + j];
      e[i] += d * d;
    }
  return e;
}

// sum_i v_i / sum_i p_i and its delta-method standard error.
std::pair<double, double> ratio_with_se(const std::vector<double>& v,
                                        const std::vector<double>& p) {
  double sum_v = 0.0, sum_p = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum_v += v[i];
    sum_p += p[i];
  }
  const double r = sum_v / sum_p;
  double spread = 0.0;
  for (size_t i = 0; i < v.size(); ++i) spread += (v[i] - r * p[i]) * (v[i] - r * p[i]);
  return {r, std::sqrt(spread) / sum_p};
}

std::string format(const char* pattern, double a, double b = 0.0) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, a, b);
  return buffer;
}

}  // namespace

std::vector<DenoiseBenchEntry> run_denoise_bench(const datasets::Gmm& prior, const Tensor& x_test,
                                                 const Schedule& schedule,
                                                 NoisePredictor& predictor,
                                                 const DenoiseBenchOptions& options) {
  const int64_t dim = prior.dim;
  const std::vector<double> x =
      datasets::to_double_rows(x_test, dim, "run_denoise_bench", "x_test");
  const int64_t n = static_cast<int64_t>(x.size()) / dim;
  if (n < 2) throw std::invalid_argument("run_denoise_bench: x_test needs at least 2 rows");
  std::vector<double> power(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) power[i] += x[i * dim + j] * x[i * dim + j];

  std::vector<DenoiseBenchEntry> entries;
  const Rng base(options.seed);
  for (size_t s = 0; s < options.snr_db.size(); ++s) {
    const double snr_db = options.snr_db[s], sigma2 = datasets::snr_db_to_sigma2(snr_db);
    Rng noise = base.split(2 * s);
    DoubleBatch y = DoubleBatch::from_rows(x, n, dim);
    for (double& v : y.values) v += std::sqrt(sigma2) * noise.normal();

    std::vector<double> cme_errors;
    auto record = [&](DenoiseBenchEntry entry, const std::vector<double>& x_hat,
                      std::chrono::steady_clock::time_point start) {
      std::vector<double> e = squared_errors(x, x_hat, dim);
      if (cme_errors.empty()) cme_errors = e;  // the CME is always evaluated first
      std::vector<double> gap(e.size());
      for (size_t i = 0; i < e.size(); ++i) gap[i] = e[i] - cme_errors[i];
      entry.snr_db = snr_db;
      std::tie(entry.nmse, entry.nmse_se) = ratio_with_se(e, power);
      std::tie(entry.gap, entry.gap_se) = ratio_with_se(gap, power);
      entry.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (entry.estimator == "cme" && !options.references) return;
      if (options.on_entry) options.on_entry(entry);
      entries.push_back(std::move(entry));
    };

    auto start = std::chrono::steady_clock::now();
    record({"cme"}, prior.cme(y.values, prior.factorize(sigma2)), start);
    if (options.references) {
      start = std::chrono::steady_clock::now();
      record({"lmmse"}, prior.lmmse(y.values, sigma2), start);
      record({"ls"}, y.values, std::chrono::steady_clock::now());
    }
    for (const Estimator& estimator : options.estimators) {
      Rng estimator_rng = base.split(2 * s + 1);  // the same for every estimator: order-free
      start = std::chrono::steady_clock::now();
      Denoised d = denoise(estimator, y, 1.0 / sigma2, predictor, schedule, estimator_rng);
      DenoiseBenchEntry entry{estimator.name(), schedule.T()};
      entry.matched_step = d.matched_step;
      entry.evaluations = d.evaluations;
      record(std::move(entry), d.x_hat.values, start);
    }
  }
  return entries;
}

std::string denoise_bench_markdown(const std::vector<DenoiseBenchEntry>& entries) {
  // Rows (T, estimator) in order of first appearance, columns the SNRs in ascending order.
  std::vector<std::pair<int64_t, std::string>> rows;
  std::map<double, int> columns;
  std::map<std::pair<size_t, double>, const DenoiseBenchEntry*> cell;
  for (const DenoiseBenchEntry& e : entries) {
    std::pair<int64_t, std::string> key{e.T, e.estimator};
    size_t r = 0;
    while (r < rows.size() && rows[r] != key) ++r;
    if (r == rows.size()) rows.push_back(key);
    columns[e.snr_db] = 0;
    cell[{r, e.snr_db}] = &e;
  }
  auto table = [&](const std::string& title, bool skip_references,
                   const std::function<std::string(const DenoiseBenchEntry&)>& text) {
    std::string out = title + "\n\n| T | estimator |";
    for (const auto& [snr, unused] : columns) out += format(" %g dB |", snr);
    out += "\n|---|---|";
    for (size_t c = 0; c < columns.size(); ++c) out += "---|";
    out += "\n";
    for (size_t r = 0; r < rows.size(); ++r) {
      if (skip_references && rows[r].first == 0) continue;
      out += "| ";
      out += rows[r].first == 0 ? std::string("-") : std::to_string(rows[r].first);
      out += " | " + rows[r].second + " |";
      for (const auto& [snr, unused] : columns) {
        auto found = cell.find({r, snr});
        out += " ";
        if (found != cell.end()) out += text(*found->second);
        out += " |";
      }
      out += "\n";
    }
    return out + "\n";
  };
  return table(
             "NMSE (± one standard error over the test samples):", false,
             [](const DenoiseBenchEntry& e) { return format("%.4g ± %.2g", e.nmse, e.nmse_se); }) +
         table("NMSE minus the CME's on the same observations (± one standard error):", false,
               [](const DenoiseBenchEntry& e) {
                 return e.estimator == "cme" ? std::string("0")
                                             : format("%+.3g ± %.2g", e.gap, e.gap_se);
               }) +
         table("Predictor evaluations per denoised batch (matched step t_hat in brackets):", true,
               [](const DenoiseBenchEntry& e) {
                 return std::to_string(e.evaluations) + " (" + std::to_string(e.matched_step) + ")";
               });
}

}  // namespace dpm::diffusion
