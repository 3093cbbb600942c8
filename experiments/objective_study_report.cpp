#include "experiments/objective_study_report.hpp"

#include <cmath>
#include <limits>
#include <optional>

#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const char* kEstimators[] = {"tweedie", "mean-forwarding"};

// The entry of `estimator` at `snr_db` among `entries`, if there.
const diffusion::DenoiseBenchEntry* find_entry(
    const std::vector<diffusion::DenoiseBenchEntry>& entries, const std::string& estimator,
    double snr_db) {
  for (const auto& entry : entries)
    if (entry.estimator == estimator && entry.snr_db == snr_db) return &entry;
  return nullptr;
}

// NMSE over the CME's on the same observations (the CME rows come with the first run's oracle
// table).
double over_cme(const ObjectiveStudyResults& results,
                const std::vector<diffusion::DenoiseBenchEntry>& entries,
                const std::string& estimator, double snr_db) {
  const auto* entry = find_entry(entries, estimator, snr_db);
  const auto* cme = find_entry(results.oracle_denoise, "cme", snr_db);
  return entry && cme ? entry->nmse / cme->nmse : kNaN;
}

// The bound of `predictor` with sigma_t^2 = `variance`.
double bound_of(const NllBoundResults& bound, const std::string& predictor,
                diffusion::ReverseVariance variance) {
  for (const NllBoundRow& row : bound.rows)
    if (row.predictor == predictor && row.variance == variance) return row.result.bound;
  return kNaN;
}

Table bound_table(const ObjectiveStudyResults& results) {
  using diffusion::ReverseVariance;
  Table table({"objective", "steps", "training time", "NLL bound, sigma^2 = beta",
               "NLL bound, sigma^2 = beta~", "eps*'s bound (beta~)", "exact NLL",
               "gap to the NLL (best)"});
  for (const ObjectiveRun& run : results.runs) {
    const double beta = bound_of(run.bound, "network", ReverseVariance::beta);
    const double tilde = bound_of(run.bound, "network", ReverseVariance::beta_tilde);
    table.add_row({choice_name(run.objective), std::to_string(run.steps),
                   duration(run.train_seconds), number(beta, "%.4f"), number(tilde, "%.4f"),
                   number(bound_of(run.bound, "oracle", ReverseVariance::beta_tilde), "%.4f"),
                   number(run.bound.exact_nll, "%.4f"),
                   number(std::fmin(beta, tilde) - run.bound.exact_nll, "%.4f")});
  }
  return table;
}

Table denoise_table(const ObjectiveStudyResults& results) {
  std::vector<std::string> header{"predictor", "estimator"};
  for (double snr : results.plan.denoise_snr) header.push_back(number(snr, "%g") + " dB");
  Table table(header);
  auto add = [&](const std::string& who, const std::vector<diffusion::DenoiseBenchEntry>& rows) {
    for (const char* estimator : kEstimators) {
      std::vector<std::string> cells{who, estimator};
      for (double snr : results.plan.denoise_snr)
        cells.push_back(number(over_cme(results, rows, estimator, snr), "%.4f"));
      table.add_row(cells);
    }
  };
  for (const ObjectiveRun& run : results.runs)
    add(std::string("network, ") + choice_name(run.objective), run.denoise);
  add("eps* (exact)", results.oracle_denoise);
  return table;
}

Table lipschitz_table(const ObjectiveStudyResults& results) {
  Table table({"objective", "t", "SNR (dB)", "Lip(mu_theta) max, last scan", "1/sqrt(alpha_t)",
               "exact CME max", "/ bound", "/ exact", "first scan above the bound"});
  for (const ObjectiveRun& run : results.runs)
    for (const CrossingSummary& c : crossing_summary(run.trajectory)) {
      const TrackedStepTrajectory& s = *run.trajectory.step(c.t);
      table.add_row({choice_name(run.objective), std::to_string(c.t), number(c.snr_db, "%g"),
                     number(c.last_mu_max), number(s.log_concave_bound),
                     s.exact_cme_max ? number(*s.exact_cme_max) : "n/a",
                     number(c.over_bound, "%.4f"), number(c.over_exact, "%.4f"),
                     c.first_above_bound ? std::to_string(*c.first_above_bound) : "never"});
    }
  return table;
}

std::vector<std::pair<double, double>> points(const StepValues& series) {
  std::vector<std::pair<double, double>> xy;
  for (const auto& [step, value] : series) xy.emplace_back(static_cast<double>(step), value);
  return xy;
}

std::vector<Plot> plots(const ObjectiveStudyResults& results, const fs::path& dir) {
  std::vector<Plot> out;
  if (results.runs.empty()) return out;
  for (const TrackedStepTrajectory& first : results.runs.front().trajectory.tracked) {
    std::vector<Curve> curves;
    int64_t last = 0;
    for (const ObjectiveRun& run : results.runs)
      if (const TrackedStepTrajectory* s = run.trajectory.step(first.t); s && !s->mu_max.empty()) {
        curves.push_back(
            {choice_name(run.objective), "linespoints pt 7 ps 0.6", points(s->mu_max)});
        last = std::max(last, s->mu_max.back().first);
      }
    if (curves.empty()) continue;
    auto level = [&](const std::string& title, const std::string& style, double value) {
      curves.push_back({title, style, {{0.0, value}, {static_cast<double>(last), value}}});
    };
    level("1/sqrt(alpha_t)", "lines dt 2 lw 2 lc rgb 'black'", first.log_concave_bound);
    if (first.exact_cme_max)
      level("exact CME at the probes", "lines dt 4 lw 2 lc rgb 'gray30'", *first.exact_cme_max);
    out.push_back(curve_plot(dir, "mu_t" + std::to_string(first.t),
                             "set title 'Empirical Lip(mu_theta(., t)) at t = " +
                                 std::to_string(first.t) + " (" + number(first.snr_db, "%g") +
                                 " dB), max over the probes'\nset xlabel 'step'\n"
                                 "set ylabel 'Jacobian norm'\nset key below\n",
                             curves));
  }
  std::vector<Curve> bounds;
  for (const ObjectiveRun& run : results.runs)
    if (!run.trajectory.certified_bound.empty())
      bounds.push_back({choice_name(run.objective), "linespoints pt 7 ps 0.6",
                        points(run.trajectory.certified_bound)});
  if (!bounds.empty())
    out.push_back(curve_plot(dir, "certified_bound",
                             "set title 'Certified Lipschitz bound (product of layer norms)'\n"
                             "set xlabel 'step'\nset ylabel 'bound'\nset logscale y\n",
                             bounds));
  return out;
}

}  // namespace

std::string markdown(const ObjectiveStudyResults& results) {
  const ObjectiveStudyPlan& plan = results.plan;
  std::string md = "# L_simple, L_vlb and L_hybrid on one network\n\n";
  md += "Model " + results.model.dump() + " (" + std::to_string(results.parameters) +
        " parameters) on " + plan.data + " (N = " + std::to_string(results.dim) +
        "), T = " + std::to_string(results.T) + ", the same steps for every objective; total " +
        duration(results.seconds) + ".\n\n";
  md += "## The variational bound (nats/dim, " + std::to_string(plan.nll_samples) +
        " test samples)\n\n" + bound_table(results).markdown() + "\n";
  md += "## Denoising NMSE over the CME (" + std::to_string(plan.denoise_samples) +
        " test samples; 1 is the optimum)\n\n" + denoise_table(results).markdown() + "\n";
  md += "## Empirical Lipschitz constants of mu_theta at the end of training\n\n" +
        lipschitz_table(results).markdown() + "\n";
  md +=
      "Each run's trajectory: RUN/report/training.md; the plots mu_t<t>.png put the objectives "
      "side by side.\n\n## Runs\n\n";
  for (const ObjectiveRun& run : results.runs)
    md += "- " + std::string(choice_name(run.objective)) + ": " + run.run_dir + " (" + run.stop +
          ")\n";
  return md + "\n";
}

nlohmann::json to_json(const ObjectiveStudyResults& results) {
  nlohmann::json json = {{"config", results.plan.to_json()},
                         {"model", results.model},
                         {"parameters", results.parameters},
                         {"dim", results.dim},
                         {"T", results.T},
                         {"seconds", results.seconds},
                         {"runs", nlohmann::json::array()}};
  for (const ObjectiveRun& run : results.runs) {
    nlohmann::json entry = {{"objective", choice_name(run.objective)},
                            {"run_dir", run.run_dir},
                            {"steps", run.steps},
                            {"train_seconds", run.train_seconds},
                            {"stop", run.stop},
                            {"exact_nll", run.bound.exact_nll},
                            {"bounds", nlohmann::json::array()},
                            {"nmse_over_cme", nlohmann::json::object()},
                            {"lipschitz", nlohmann::json::array()}};
    for (const NllBoundRow& row : run.bound.rows)
      entry["bounds"].push_back(
          {{"predictor", row.predictor},
           {"reverse_variance", diffusion::reverse_variance_name(row.variance)},
           {"bound", row.result.bound}});
    for (const char* estimator : kEstimators)
      for (double snr : results.plan.denoise_snr)
        entry["nmse_over_cme"][estimator].push_back(
            {{"snr_db", snr}, {"value", over_cme(results, run.denoise, estimator, snr)}});
    for (const CrossingSummary& c : crossing_summary(run.trajectory))
      entry["lipschitz"].push_back(
          {{"t", c.t},
           {"snr_db", c.snr_db},
           {"last_step", c.last_step},
           {"mu_max", c.last_mu_max},
           {"over_bound", c.over_bound},
           {"over_exact", c.over_exact},
           {"first_above_bound",
            c.first_above_bound ? nlohmann::json(*c.first_above_bound) : nlohmann::json(nullptr)}});
    json["runs"].push_back(entry);
  }
  return json;
}

Written write(const ObjectiveStudyResults& results, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<std::vector<std::string>> rows;
  for (const ObjectiveRun& run : results.runs) {
    std::vector<std::string> row{
        choice_name(run.objective),
        std::to_string(run.steps),
        csv_number(run.train_seconds),
        csv_number(run.bound.exact_nll),
        csv_number(bound_of(run.bound, "network", diffusion::ReverseVariance::beta)),
        csv_number(bound_of(run.bound, "network", diffusion::ReverseVariance::beta_tilde))};
    for (const char* estimator : kEstimators)
      for (double snr : results.plan.denoise_snr)
        row.push_back(csv_number(over_cme(results, run.denoise, estimator, snr)));
    rows.push_back(row);
  }
  std::string header = "objective,steps,train_seconds,exact_nll,bound_beta,bound_beta_tilde";
  for (const char* estimator : kEstimators)
    for (double snr : results.plan.denoise_snr)
      header += "," + std::string(estimator) + "_over_cme_" + csv_number(snr) + "dB";
  Written written{markdown(results), {"objectives.md", "objectives.json", "objectives.csv"}, {}};
  write_text(dir / "objectives.md", written.markdown);
  write_text(dir / "objectives.json", to_json(results).dump(2) + "\n");
  write_csv(dir / "objectives.csv", header, rows);
  written.plots = render_plots(plots(results, dir), dir, "objective-study");
  return written;
}

}  // namespace dpm::experiments::report
