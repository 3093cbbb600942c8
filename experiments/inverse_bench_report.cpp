#include "experiments/inverse_bench_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "autograd/io/safetensors.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

using Entry = InverseBenchEntry;

// The posterior mean's entry of the same task and sigma_y: the optimum every row is set beside.
const Entry* optimum(const InverseBenchResults& results, const Entry& e) {
  for (const Entry& r : results.entries)
    if (r.method == "posterior-mean" && r.task == e.task && r.sigma_y == e.sigma_y) return &r;
  return nullptr;
}

// The gap as a percentage of the posterior mean's NMSE ("12.3% above").
std::string relative_gap(const InverseBenchResults& results, const Entry& e) {
  const Entry* best = optimum(results, e);
  if (!best || best->score.nmse <= 0) return "";
  return number(100.0 * e.score.gap / best->score.nmse, "%.3g") + "%";
}

std::string with_se(double value, double se) {
  return number(value) + " ± " + number(se, "%.2g");
}

Table entry_table(const InverseBenchResults& results, const std::vector<const Entry*>& rows,
                  bool with_variant) {
  std::vector<std::string> header = {"task", "sigma_y", "method", "predictor"};
  if (with_variant) header.push_back("RED-Diff setting");
  for (const char* h : {"steps", "NMSE", "gap to E[x0|y]", "above E[x0|y]", "distance to E[x0|y]",
                        "NFE", "backward", "time"})
    header.push_back(h);
  Table table(header);
  for (const Entry* e : rows) {
    std::vector<std::string> cells = {e->task, number(e->sigma_y), e->method, e->predictor};
    if (with_variant) cells.push_back(e->variant);
    if (!std::isfinite(e->score.nmse)) {  // a diverged solver: its errors are not numbers
      cells.push_back(e->steps ? std::to_string(e->steps) : std::string());
      for (const char* cell : {"diverged (non-finite)", "", "", ""}) cells.push_back(cell);
      for (std::string cell : {std::to_string(e->evaluations), std::to_string(e->backward_passes),
                               duration(e->seconds)})
        cells.push_back(cell);
      table.add_row(cells);
      continue;
    }
    for (std::string cell :
         {e->steps ? std::to_string(e->steps) : std::string(),
          with_se(e->score.nmse, e->score.nmse_se), with_se(e->score.gap, e->score.gap_se),
          relative_gap(results, *e), with_se(e->score.distance, e->score.distance_se),
          e->steps ? std::to_string(e->evaluations) : std::string(),
          e->steps ? std::to_string(e->backward_passes) : std::string(), duration(e->seconds)})
      cells.push_back(cell);
    table.add_row(cells);
  }
  return table;
}

std::vector<const Entry*> select(const InverseBenchResults& results, InverseBenchPart part,
                                 const std::string& task = "") {
  std::vector<const Entry*> rows;
  for (const Entry& e : results.entries)
    if (e.part == part && (task.empty() || e.task == task)) rows.push_back(&e);
  return rows;
}

// Per predictor and solver of the table: the range of its gap to the posterior mean over the
// tasks and noise levels, relative to the optimum's NMSE, and the cost.
std::string summary(const InverseBenchResults& results) {
  std::string md = "## Summary\n\n";
  std::map<std::pair<std::string, std::string>, std::vector<const Entry*>> groups;
  for (const Entry* e : select(results, InverseBenchPart::table))
    if (!e->predictor.empty()) groups[{e->predictor, e->method}].push_back(e);
  for (const auto& [key, rows] : groups) {
    double low = 1e300, high = -1e300, seconds = 0;
    std::string worst;
    size_t diverged = 0;
    for (const Entry* e : rows) {
      seconds += e->seconds;
      if (!std::isfinite(e->score.nmse)) {
        ++diverged;
        continue;
      }
      const Entry* best = optimum(results, *e);
      const double rel = best && best->score.nmse > 0 ? e->score.gap / best->score.nmse : 0.0;
      low = std::min(low, rel);
      if (rel > high) {
        high = rel;
        worst = e->task + ", sigma_y " + number(e->sigma_y);
      }
    }
    const std::string cases = std::to_string(rows.size()) + " cases";
    std::string errors;
    if (diverged < rows.size())
      errors = "MSE " + number(100 * low, "%.3g") + "% to " + number(100 * high, "%.3g") +
               "% above the exact posterior mean (worst at " + worst + ")";
    if (diverged > 0)
      errors += (errors.empty() ? "" : "; ") + std::string("diverged (non-finite) in ") +
                std::to_string(diverged) + " of " + cases;
    md += "- " + key.second + " with " + (key.first == "oracle" ? "eps*" : "the network") + ": " +
          errors + ", NFE " + std::to_string(rows.front()->evaluations) +
          " per restoration batch, " + duration(seconds) + " in all.\n";
  }
  double lmmse_low = 1e300, lmmse_high = -1e300;
  for (const Entry* e : select(results, InverseBenchPart::table))
    if (e->method == "lmmse") {
      const Entry* best = optimum(results, *e);
      const double rel = best->score.nmse > 0 ? e->score.gap / best->score.nmse : 0.0;
      lmmse_low = std::min(lmmse_low, rel);
      lmmse_high = std::max(lmmse_high, rel);
    }
  if (lmmse_high > -1e300)
    md += "- The LMMSE estimator (the best affine in y): " + number(100 * lmmse_low, "%.3g") +
          "% to " + number(100 * lmmse_high, "%.3g") + "% above the posterior mean.\n";
  return md + "- Cost of the whole run: " + duration(results.seconds) + ".\n\n";
}

std::vector<Plot> nfe_plots(const InverseBenchResults& results, const std::filesystem::path& dir) {
  std::vector<Plot> plots;
  for (const std::string& predictor : results.resolved.predictors()) {
    std::map<std::string, Curve> curves;
    std::string task;
    double sigma = 0;
    for (const Entry* e : select(results, InverseBenchPart::nfe))
      if (e->predictor == predictor && std::isfinite(e->score.nmse)) {
        Curve& c = curves[e->method];
        c.title = e->method;
        c.style = "linespoints pt 7";
        c.xy.push_back({static_cast<double>(e->evaluations), e->score.nmse});
        task = e->task;
        sigma = e->sigma_y;
      }
    if (curves.empty()) continue;
    std::vector<Curve> list;
    for (auto& [name, c] : curves) list.push_back(c);
    for (const Entry& e : results.entries)
      if (e.method == "posterior-mean" && e.task == task && e.sigma_y == sigma) {
        const double lo = 1, hi = list.front().xy.back().first;
        list.push_back(
            {"exact posterior mean", "lines dt 2 lw 2", {{lo, e.score.nmse}, {hi, e.score.nmse}}});
      }
    const std::string who = predictor == "oracle" ? "eps*" : "the network";
    plots.push_back(curve_plot(dir, "nfe_" + predictor,
                               "set title 'NMSE against NFE, " + who + " (" + task + ", sigma_y " +
                                   number(sigma) +
                                   ")'\nset logscale xy\n"
                                   "set xlabel 'network evaluations (NFE)'\nset ylabel 'NMSE'\n"
                                   "set key outside right\n",
                               list));
  }
  return plots;
}

void write_measurements(const InverseBenchResults& results, const std::filesystem::path& path) {
  auto tensor = [](const std::vector<double>& values, Shape shape) {
    return Tensor::from_vector(shape, std::vector<float>(values.begin(), values.end()));
  };
  const int64_t n = static_cast<int64_t>(results.x0.size()) / results.dim;
  NamedTensors tensors = {{"x0", tensor(results.x0, Shape{n, results.dim})}};
  std::vector<std::string> tasks;  // the noise levels of a task share its operator
  for (const InverseMeasurements& m : results.measurements) {
    if (std::find(tasks.begin(), tasks.end(), m.task) == tasks.end()) {
      tasks.push_back(m.task);
      tensors.push_back({"A: " + m.task, tensor(m.operator_matrix, Shape{m.rows, results.dim})});
    }
    tensors.push_back(
        {"y: " + m.task + ", sigma_y " + number(m.sigma_y), tensor(m.y, Shape{n, m.rows})});
  }
  write_safetensors(path.string(), tensors, {{"format", "dpmlab inverse-bench measurements"}});
}

}  // namespace

std::string markdown(const InverseBenchResults& results) {
  const InverseBenchPlan& plan = results.resolved;
  std::string md = "# Inverse problems with a DM prior\n\nPrior " + plan.gmm +
                   " (N = " + std::to_string(results.dim) +
                   ", K = " + std::to_string(results.components) + "), " +
                   std::to_string(plan.samples) + " test samples (seed " +
                   std::to_string(plan.seed) + "); y = A x0 + sigma_y n. Predictors: eps* (oracle" +
                   ", " + plan.schedule + ", T = " + std::to_string(plan.T) + ")" +
                   (plan.checkpoint.empty() ? "" : " and the network " + plan.checkpoint) +
                   ". NMSE = sum ||x_hat - x0||^2 / sum ||x0||^2; the gap is NMSE - NMSE(E[x0|y]) "
                   "on the same measurements (paired), with standard errors.\n\n" +
                   summary(results);
  std::vector<std::string> tasks;
  for (const InverseTask& t : plan.tasks()) tasks.push_back(t.name());
  for (const std::string& task : tasks) {
    const std::vector<const Entry*> rows = select(results, InverseBenchPart::table, task);
    if (!rows.empty())
      md += "## " + task + "\n\n" + entry_table(results, rows, false).markdown() + "\n";
  }
  if (const auto rows = select(results, InverseBenchPart::nfe); !rows.empty())
    md += "## NMSE against the number of evaluations\n\n" +
          entry_table(results, rows, false).markdown() + "\n";
  if (const auto rows = select(results, InverseBenchPart::ablation); !rows.empty())
    md += "## RED-Diff ablation: weighting, lambda, step order\n\n" +
          entry_table(results, rows, true).markdown() + "\n";
  return md;
}

nlohmann::json to_json(const InverseBenchResults& results) {
  nlohmann::json json = {{"config", results.plan.to_json()},
                         {"resolved", results.resolved.to_json()},
                         {"dim", results.dim},
                         {"components", results.components},
                         {"seconds", results.seconds},
                         {"entries", nlohmann::json::array()}};
  for (const Entry& e : results.entries)
    json["entries"].push_back({{"part", choice_name(e.part)},
                               {"task", e.task},
                               {"sigma_y", e.sigma_y},
                               {"predictor", e.predictor},
                               {"method", e.method},
                               {"variant", e.variant},
                               {"steps", e.steps},
                               {"nmse", e.score.nmse},
                               {"nmse_se", e.score.nmse_se},
                               {"gap", e.score.gap},
                               {"gap_se", e.score.gap_se},
                               {"distance", e.score.distance},
                               {"distance_se", e.score.distance_se},
                               {"evaluations", e.evaluations},
                               {"backward_passes", e.backward_passes},
                               {"seconds", e.seconds}});
  return json;
}

Written write(const InverseBenchResults& results, const std::filesystem::path& dir) {
  std::vector<std::vector<std::string>> rows;
  for (const Entry& e : results.entries)
    rows.push_back({choice_name(e.part), e.task, csv_number(e.sigma_y), e.predictor, e.method,
                    e.variant, std::to_string(e.steps), csv_number(e.score.nmse),
                    csv_number(e.score.nmse_se), csv_number(e.score.gap),
                    csv_number(e.score.gap_se), csv_number(e.score.distance),
                    csv_number(e.score.distance_se), std::to_string(e.evaluations),
                    std::to_string(e.backward_passes), csv_number(e.seconds)});
  Written written{
      markdown(results),
      {"inverse_bench.md", "inverse_bench.json", "inverse_bench.csv", "measurements.safetensors"},
      {}};
  write_text(dir / "inverse_bench.md", written.markdown);
  write_text(dir / "inverse_bench.json", to_json(results).dump(2) + "\n");
  write_csv(dir / "inverse_bench.csv",
            "part,task,sigma_y,predictor,method,variant,steps,nmse,nmse_se,gap,gap_se,distance,"
            "distance_se,evaluations,backward_passes,seconds",
            rows);
  write_measurements(results, dir / "measurements.safetensors");
  const std::vector<Plot> plots = nfe_plots(results, dir);
  for (const Plot& p : plots) written.files.push_back(p.name + ".gp");
  written.plots = render_plots(plots, dir, "inverse-bench");
  return written;
}

}  // namespace dpm::experiments::report
