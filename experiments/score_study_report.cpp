#include "experiments/score_study_report.hpp"

#include <algorithm>
#include <cmath>

#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

namespace fs = std::filesystem;

const char* sweep_name(ScoreSweep sweep) {
  return sweep == ScoreSweep::samples ? "samples" : "width";
}

std::string error(double v) {
  return number(v, "%.4g");
}

double median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

std::string fit_text(const LogLogFit& fit) {
  return number(fit.slope, "%.3f") + " (95% CI " + number(fit.ci_low, "%.3f") + " .. " +
         number(fit.ci_high, "%.3f") + ", " + std::to_string(fit.points) + " runs)";
}

std::string summary(const ScoreStudyResults& results) {
  std::vector<double> rule_cost, overfit;
  int64_t ran_out = 0;
  for (const ScoreRun& run : results.runs) {
    rule_cost.push_back(run.stopped_error / run.best_error);
    overfit.push_back(run.final_error / run.best_error);
    ran_out += run.stopped_by_rule ? 0 : 1;
  }
  std::string md = "## Summary (as measured)\n\n";
  md += "- Training on the noisy labels past the best iteration: the final exact score error is " +
        number(median(overfit), "%.3g") +
        "x the least along the run (median over " + std::to_string(results.runs.size()) +
        " runs; 1 would mean no overfitting within the budget).\n";
  md += "- The early-stopping rule (held-out DSM risk only) stops at " +
        number(median(rule_cost), "%.3g") +
        "x the oracle-best error (median); in " + std::to_string(ran_out) +
        " runs it had not triggered by the last iteration and took the best held-out one.\n";
  md += "- Score error at the stopped iteration against n: slope " + fit_text(results.samples_fit) +
        " on log-log axes.\n";
  if (results.width_fit.points > 0)
    md += "- ||f - f_lin|| at the last iteration against m: slope " + fit_text(results.width_fit) +
          " (the kernel regime predicts -0.5).\n";
  if (!results.oracle_denoise_over_cme.empty()) {
    md += "- One-step Tweedie with eps*, NMSE over the CME's:";
    for (size_t i = 0; i < results.oracle_denoise_over_cme.size(); ++i)
      md += std::string(i ? "," : "") + " " + number(results.plan.denoise_snr[i], "%g") +
            " dB " + number(results.oracle_denoise_over_cme[i], "%.4g");
    md += " (the runs' rows: the same with the stopped network).\n";
  }
  return md + "- Cost: " + duration(results.seconds) + ".\n\n";
}

Table runs_table(const ScoreStudyResults& results) {
  std::vector<std::string> header{"sweep",        "n",          "m",         "seed",
                                  "stopped at",   "error there", "best at",  "least error",
                                  "final error",  "stopped / best", "kernel regression"};
  for (double snr : results.plan.denoise_snr)
    header.push_back("Tweedie / CME " + number(snr, "%g") + " dB");
  header.push_back("time");
  Table table(header);
  for (const ScoreRun& run : results.runs) {
    std::vector<std::string> row{sweep_name(run.unit.sweep),
                                 std::to_string(run.unit.samples),
                                 std::to_string(run.unit.width),
                                 std::to_string(run.unit.seed),
                                 std::to_string(run.stopped_iteration) +
                                     (run.stopped_by_rule ? "" : " (end)"),
                                 error(run.stopped_error),
                                 std::to_string(run.best_iteration),
                                 error(run.best_error),
                                 error(run.final_error),
                                 number(run.stopped_error / run.best_error, "%.3f"),
                                 error(run.kernel_error)};
    for (double ratio : run.denoise_over_cme) row.push_back(number(ratio, "%.4g"));
    row.push_back(duration(run.seconds));
    table.add_row(row);
  }
  return table;
}

double least_linear_error(const ScoreRun& run) {
  double least = INFINITY;
  for (const ScorePoint& p : run.curve) least = std::min(least, p.linear_score_error);
  return least;
}

Table width_table(const ScoreStudyResults& results) {
  Table table({"m", "seed", "RMS f - f_lin at the end", "largest along the run",
               "f: final error", "f_lin: final error", "f_lin: least error", "kernel regression",
               "NTK rank / n J N"});
  for (const ScoreRun& run : results.runs) {
    if (!run.unit.linearized) continue;
    double largest = 0;
    for (const ScorePoint& p : run.curve) largest = std::max(largest, p.distance);
    const ScorePoint& last = run.curve.back();
    table.add_row({std::to_string(run.unit.width), std::to_string(run.unit.seed),
                   error(last.distance), error(largest), error(last.score_error),
                   error(last.linear_score_error), error(least_linear_error(run)),
                   error(run.kernel_error),
                   run.kernel_rank > 0 ? std::to_string(run.kernel_rank) + " / " +
                                             std::to_string(run.train_rows * results.dim)
                                       : "n/a"});
  }
  return table;
}

const std::string kErrorLabel = "set ylabel 'exact score error E||f - eps*||^2 / N'\n";

// The sample-size sweep: the error along GD per n (seed 0) with the rule's stops, the base run's
// losses, and the stopped and oracle-best errors against n with the fitted line.
std::vector<Plot> sample_plots(const fs::path& dir, const ScoreStudyResults& results) {
  const ScoreStudyPlan& plan = results.plan;
  std::vector<Curve> by_iteration, samples_curves{{"stopped by the rule", "points pt 7", {}},
                                                  {"oracle-best", "points pt 6", {}},
                                                  {"fit", "lines dt 2", {}}};
  Curve stops{"stopped by the rule", "points pt 7 ps 1.5", {}};
  const ScoreRun* base = nullptr;
  for (const ScoreRun& run : results.runs) {
    const ScoreStudyUnit& u = run.unit;
    if (u.width != plan.base_width) continue;
    if (u.samples == plan.base_samples && u.seed == 0) base = &run;
    samples_curves[0].xy.emplace_back(u.samples, run.stopped_error);
    samples_curves[1].xy.emplace_back(u.samples, run.best_error);
    if (u.seed != 0) continue;
    Curve curve{"n = " + std::to_string(u.samples), "lines", {}};
    for (const ScorePoint& p : run.curve)
      if (p.iteration > 0) curve.xy.emplace_back(p.iteration, p.score_error);
    by_iteration.push_back(std::move(curve));
    stops.xy.emplace_back(run.stopped_iteration, run.stopped_error);
  }
  by_iteration.push_back(std::move(stops));
  const LogLogFit& fit = results.samples_fit;
  for (const int64_t n : plan.samples)
    samples_curves[2].xy.emplace_back(n, std::exp(fit.intercept + fit.slope * std::log(n)));
  std::vector<Plot> plots;
  plots.push_back(curve_plot(dir, "error_vs_iterations",
                             "set title 'Exact score error along GD (m = " +
                                 std::to_string(plan.base_width) +
                                 ", seed 0)'\nset xlabel 'iteration'\nset logscale xy\n" +
                                 kErrorLabel,
                             by_iteration));
  if (base) {
    std::vector<Curve> losses{{"empirical DSM risk", "lines", {}},
                              {"held-out DSM risk", "lines", {}},
                              {"exact score error", "lines", {}},
                              {"label noise (DSM risk of eps*)", "lines dt 2", {}}};
    for (const ScorePoint& p : base->curve) {
      losses[0].xy.emplace_back(p.iteration, p.train_loss);
      losses[1].xy.emplace_back(p.iteration, p.heldout_loss);
      losses[2].xy.emplace_back(p.iteration, p.score_error);
      losses[3].xy.emplace_back(p.iteration, results.label_noise);
    }
    plots.push_back(curve_plot(dir, "losses",
                               "set title 'n = " + std::to_string(plan.base_samples) + ", m = " +
                                   std::to_string(plan.base_width) +
                                   ", seed 0'\nset xlabel 'iteration'\nset logscale y\n"
                                   "set ylabel 'mean squared error per entry'\n",
                               losses));
  }
  plots.push_back(curve_plot(dir, "error_vs_samples",
                             "set title 'Score error against the sample size (slope " +
                                 number(fit.slope, "%.3f") +
                                 ")'\nset xlabel 'n'\nset logscale xy\n" + kErrorLabel,
                             samples_curves));
  return plots;
}

// The width sweep: f - f_lin at the end against m and along GD (seed 0), and the errors against m.
std::vector<Plot> width_plots(const fs::path& dir, const ScoreStudyResults& results) {
  const ScoreStudyPlan& plan = results.plan;
  std::vector<Curve> distances, width_curves{{"at the last iteration", "points pt 7", {}}},
      width_errors{{"network, stopped by the rule", "points pt 7", {}},
                   {"network, oracle-best", "points pt 6", {}},
                   {"f_lin, least along the run", "points pt 4", {}},
                   {"kernel regression (GD limit of f_lin)", "points pt 2", {}}};
  for (const ScoreRun& run : results.runs) {
    const ScoreStudyUnit& u = run.unit;
    if (!u.linearized) continue;
    width_curves[0].xy.emplace_back(u.width, run.curve.back().distance);
    width_errors[0].xy.emplace_back(u.width, run.stopped_error);
    width_errors[1].xy.emplace_back(u.width, run.best_error);
    width_errors[2].xy.emplace_back(u.width, least_linear_error(run));
    width_errors[3].xy.emplace_back(u.width, run.kernel_error);
    if (u.seed != 0) continue;
    Curve curve{"m = " + std::to_string(u.width), "lines", {}};
    for (const ScorePoint& p : run.curve)
      if (p.iteration > 0) curve.xy.emplace_back(p.iteration, p.distance);
    distances.push_back(std::move(curve));
  }
  if (distances.empty()) return {};
  return {curve_plot(dir, "distance_vs_width",
                     "set title 'GD on the network against GD on f_lin (slope " +
                         number(results.width_fit.slope, "%.3f") +
                         ")'\nset xlabel 'm'\nset logscale xy\nset ylabel 'RMS ||f - f_lin||'\n",
                     width_curves),
          curve_plot(dir, "error_vs_width",
                     "set title 'Exact score error against the width (n = " +
                         std::to_string(plan.base_samples) +
                         ")'\nset xlabel 'm'\nset logscale xy\n" + kErrorLabel,
                     width_errors),
          curve_plot(dir, "distance_vs_iterations",
                     "set title '||f - f_lin|| along GD (n = " +
                         std::to_string(plan.base_samples) +
                         ", seed 0)'\nset xlabel 'iteration'\nset logscale xy\n"
                         "set ylabel 'RMS ||f - f_lin||'\n",
                     distances)};
}

}  // namespace

std::string markdown(const ScoreStudyResults& results) {
  const ScoreStudyPlan& plan = results.plan;
  std::string md = "# Score estimation by gradient descent\n\n";
  md += "GMM " + results.gmm_source + ": N = " + std::to_string(results.dim) + ", K = " +
        std::to_string(results.components) + ", the paper's linear schedule with T = " +
        std::to_string(results.T) + ". Two-layer network (" + choice_name(plan.activation) +
        ", " + std::to_string(plan.time_features) + " time features, " + choice_name(plan.init) +
        " initialisation) predicting eps, trained by " +
        (plan.batch == 0 ? std::string("full-batch GD")
                         : "SGD on minibatches of " + std::to_string(plan.batch)) +
        " with lr " + number(plan.lr, "%g") + " for " + std::to_string(plan.iterations) +
        " iterations on n samples x " + std::to_string(plan.draws) +
        " noise draws; evaluated every " + std::to_string(plan.eval_every) +
        " iterations. Held-out set: " + number(plan.holdout, "%g") +
        " n samples (at least 8), same draws; the rule stops after " +
        std::to_string(plan.patience) +
        " evaluations without a held-out improvement. Exact score error over " +
        std::to_string(plan.error_samples) +
        " fresh (x0, t, eps) with t stratified over 1..T, against the exact eps*. Seeds: " +
        std::to_string(plan.seeds) + " (from " + std::to_string(plan.seed) +
        "). Label noise (the DSM risk of eps* itself, the floor of every held-out risk): " +
        error(results.label_noise) + ".\n\n";
  md += summary(results);
  md += "## Runs\n\n" + runs_table(results).markdown() + "\n";
  const Table widths = width_table(results);
  if (!widths.empty())
    md += "## GD on the network against GD on its linearisation\n\nRMS distance over the error "
          "set's inputs; kernel regression = the NTK's GD limit (n/a where n J N > " +
          std::to_string(plan.kernel_max) + ").\n\n" + widths.markdown();
  return md;
}

nlohmann::json to_json(const ScoreStudyResults& results) {
  auto fit_json = [](const LogLogFit& fit) {
    return nlohmann::json{{"points", fit.points},       {"slope", fit.slope},
                          {"intercept", fit.intercept}, {"ci_low", fit.ci_low},
                          {"ci_high", fit.ci_high}};
  };
  nlohmann::json json = {{"config", results.plan.to_json()},
                         {"gmm", results.gmm_source},
                         {"dim", results.dim},
                         {"components", results.components},
                         {"T", results.T},
                         {"label_noise", results.label_noise},
                         {"oracle_tweedie_over_cme", results.oracle_denoise_over_cme},
                         {"samples_fit", fit_json(results.samples_fit)},
                         {"width_fit", fit_json(results.width_fit)},
                         {"seconds", results.seconds},
                         {"runs", nlohmann::json::array()}};
  for (const ScoreRun& run : results.runs) {
    nlohmann::json curve = nlohmann::json::array();
    for (const ScorePoint& p : run.curve)
      curve.push_back({{"iteration", p.iteration},
                       {"train_loss", p.train_loss},
                       {"heldout_loss", p.heldout_loss},
                       {"score_error", p.score_error},
                       {"linear_train_loss", p.linear_train_loss},
                       {"linear_score_error", p.linear_score_error},
                       {"distance", p.distance}});
    json["runs"].push_back({{"sweep", sweep_name(run.unit.sweep)},
                            {"samples", run.unit.samples},
                            {"width", run.unit.width},
                            {"seed", run.unit.seed},
                            {"linearized", run.unit.linearized},
                            {"train_rows", run.train_rows},
                            {"heldout_rows", run.heldout_rows},
                            {"stopped_iteration", run.stopped_iteration},
                            {"stopped_error", run.stopped_error},
                            {"stopped_by_rule", run.stopped_by_rule},
                            {"best_iteration", run.best_iteration},
                            {"best_error", run.best_error},
                            {"final_error", run.final_error},
                            {"kernel_error", run.kernel_error},
                            {"kernel_rank", run.kernel_rank},
                            {"tweedie_over_cme", run.denoise_over_cme},
                            {"seconds", run.seconds},
                            {"curve", curve}});
  }
  return json;
}

Written write(const ScoreStudyResults& results, const fs::path& dir) {
  std::vector<std::vector<std::string>> runs, curves;
  for (const ScoreRun& run : results.runs) {
    const std::vector<std::string> key{sweep_name(run.unit.sweep), std::to_string(run.unit.samples),
                                       std::to_string(run.unit.width),
                                       std::to_string(run.unit.seed)};
    runs.push_back(key);
    for (double v : {static_cast<double>(run.stopped_iteration), run.stopped_error,
                     static_cast<double>(run.best_iteration), run.best_error, run.final_error,
                     run.kernel_error, run.seconds})
      runs.back().push_back(csv_number(v));
    for (const ScorePoint& p : run.curve) {
      curves.push_back(key);
      for (double v : {static_cast<double>(p.iteration), p.train_loss, p.heldout_loss,
                       p.score_error, p.linear_train_loss, p.linear_score_error, p.distance})
        curves.back().push_back(csv_number(v));
    }
  }
  Written written{markdown(results),
                  {"score_study.md", "score_study.json", "runs.csv", "curves.csv"},
                  {}};
  write_text(dir / "score_study.md", written.markdown);
  write_text(dir / "score_study.json", to_json(results).dump(2) + "\n");
  write_csv(dir / "runs.csv",
            "sweep,n,m,seed,stopped_iteration,stopped_error,best_iteration,best_error,final_"
            "error,kernel_error,seconds",
            runs);
  write_csv(dir / "curves.csv",
            "sweep,n,m,seed,iteration,train_loss,heldout_loss,score_error,linear_train_loss,"
            "linear_score_error,distance",
            curves);
  std::vector<Plot> plots = sample_plots(dir, results);
  for (Plot& plot : width_plots(dir, results)) plots.push_back(std::move(plot));
  written.plots = render_plots(plots, dir, "score-study");
  return written;
}

}  // namespace dpm::experiments::report
