#include "experiments/denoise_bench_report.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <tuple>

#include "datasets/image_folder.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

namespace fs = std::filesystem;
using diffusion::DenoiseBenchEntry;
using diffusion::MismatchEntry;
using diffusion::MonteCarloEntry;
using diffusion::StepErrorEntry;

double decibels(double nmse) {
  return 10.0 * std::log10(nmse);
}

std::string row_label(const std::string& predictor, int64_t T, const std::string& estimator) {
  if (predictor.empty()) return estimator;
  return predictor + " T=" + std::to_string(T) + " " + estimator;
}

std::string db(double snr_db) {
  return number(snr_db, "%g");
}

// ---- markdown ----

// The worst gap to the CME of a predictor's MSE estimators at the detailed T (not DDIM and one
// ancestral run, which are generators), as a summary line.
std::string worst_gap_line(const DenoiseBenchResults& results, const std::string& predictor,
                           int64_t T) {
  const DenoiseBenchEntry* worst = nullptr;
  std::map<double, double> cme;
  for (const DenoiseBenchEntry& e : results.nmse) {
    if (e.estimator == "cme") cme[e.snr_db] = e.nmse;
    if (e.predictor == predictor && e.T == T && e.estimator != "ddim" &&
        e.estimator != "posterior-mean-M1" && (!worst || e.gap > worst->gap))
      worst = &e;
  }
  if (!worst) return "";
  return "- " + predictor + " (T = " + std::to_string(T) + "): worst NMSE above the CME " +
         number(worst->gap, "%+.3g") + " ± " + number(worst->gap_se, "%.2g") + " (" +
         number(100.0 * worst->gap / cme[worst->snr_db], "%+.3g") + "% of the CME's), " +
         worst->estimator + " at " + db(worst->snr_db) + " dB.\n";
}

std::string summary(const DenoiseBenchResults& results) {
  std::string md = "## Summary\n\n";
  if (results.network_T > 0) md += worst_gap_line(results, "network", results.network_T);
  md += worst_gap_line(results, "oracle", results.resolved.detail_T);
  std::map<std::string, int64_t> evaluations;
  for (const DenoiseBenchEntry& e : results.nmse)
    if (!e.predictor.empty()) evaluations[e.predictor] += e.evaluations;
  md += "- Cost: " + number(results.seconds, "%.3g") + " s in all";
  for (const auto& [predictor, count] : evaluations)
    md += "; " + std::to_string(count) + " " + predictor + " evaluations in the NMSE table";
  return md + ".\n\n";
}

// A column of the denoised-image grid: the entries of one predictor and estimator ("ls": y).
struct GridColumn {
  std::string predictor, estimator, label;
  int64_t T = 0;
};

// The columns the NMSE table has, in the grid's order: y, the CME, mean forwarding and Tweedie
// with the network, then with eps* (at the detailed T); the truth follows them.
std::vector<GridColumn> grid_columns(const DenoiseBenchResults& results) {
  std::vector<GridColumn> wanted = {{"", "ls", "noisy y"}, {"", "cme", "CME"}};
  for (const auto& [predictor, name, T] :
       {std::tuple{"network", "network", results.network_T},
        std::tuple{"oracle", "eps*", results.resolved.detail_T}})
    for (const auto& [estimator, label] :
         {std::pair{"mean-forwarding", "mean forwarding"}, std::pair{"tweedie", "Tweedie"}})
      wanted.push_back({predictor, estimator, std::string(label) + " (" + name + ")", T});
  std::vector<GridColumn> present;
  for (const GridColumn& c : wanted)
    if (std::any_of(results.nmse.begin(), results.nmse.end(), [&](const DenoiseBenchEntry& e) {
          return e.predictor == c.predictor && e.estimator == c.estimator && e.T == c.T &&
                 !e.examples.empty();
        }))
      present.push_back(c);
  return present;
}

std::vector<double> table_snrs(const std::vector<DenoiseBenchEntry>& entries) {
  std::vector<double> snrs;
  for (const DenoiseBenchEntry& e : entries)
    if (std::find(snrs.begin(), snrs.end(), e.snr_db) == snrs.end()) snrs.push_back(e.snr_db);
  return snrs;
}

// Per SNR of the NMSE table, one row per shown image: the grid's columns, then the truth; in
// pixels (the training data's normalisation undone).
void write_denoised_grid(const DenoiseBenchResults& results, const std::vector<GridColumn>& columns,
                         const fs::path& path) {
  const int64_t dim = results.dim;
  const int64_t rows = static_cast<int64_t>(results.grid_truth.size()) / dim;
  std::vector<float> tiles;
  auto append = [&](const std::vector<double>& values, int64_t row) {
    tiles.insert(tiles.end(), values.begin() + row * dim, values.begin() + (row + 1) * dim);
  };
  for (double snr : table_snrs(results.nmse))
    for (int64_t r = 0; r < rows; ++r) {
      for (const GridColumn& c : columns)
        for (const DenoiseBenchEntry& e : results.nmse)
          if (e.snr_db == snr && e.predictor == c.predictor && e.estimator == c.estimator &&
              e.T == c.T)
            append(e.examples, r);
      append(results.grid_truth, r);
    }
  std::vector<int64_t> shape = results.image_shape;
  const int64_t count = static_cast<int64_t>(tiles.size()) / dim;
  shape.insert(shape.begin(), count);
  const Tensor images =
      datasets::denormalize(Tensor::from_vector(Shape(shape), std::move(tiles)),
                            results.normalization);
  datasets::write_png_grid(path.string(), images, static_cast<int>(columns.size()) + 1);
}

std::string denoised_grid_section(const DenoiseBenchResults& results,
                                  const std::vector<GridColumn>& columns) {
  std::string labels, snrs;
  for (const GridColumn& c : columns) labels += c.label + " | ";
  for (double snr : table_snrs(results.nmse)) snrs += (snrs.empty() ? "" : ", ") + db(snr);
  return "## Denoised images\n\nPer row: " + labels + "truth. " +
         std::to_string(results.grid_truth.size() / static_cast<size_t>(results.dim)) +
         " test images per SNR, from the top: " + snrs +
         " dB.\n\n![denoised test images](denoised.png)\n\n";
}

std::string header(const DenoiseBenchResults& results) {
  const DenoiseBenchPlan& plan = results.resolved;
  std::string md = "# Denoising benchmark\n\nPrior: " + plan.gmm +
                   " (N = " + std::to_string(results.dim) +
                   ", K = " + std::to_string(results.components) + ", average power per entry " +
                   number(results.power_per_entry) + "); " + std::to_string(plan.samples) +
                   " test samples drawn from it (seed " + std::to_string(plan.seed) +
                   "); y = x + n, n ~ N(0, sigma^2 I), SNR = 1 / sigma^2; NMSE = sum ||x - "
                   "x_hat||^2 / sum ||x||^2. Predictors: ";
  std::vector<std::string> predictors;
  if (plan.runs(DenoisePredictor::oracle)) predictors.push_back("oracle = the exact eps* of the GMM");
  if (results.network_T > 0)
    predictors.push_back("network = " + plan.checkpoint + " (T = " +
                         std::to_string(results.network_T) + ")");
  for (size_t i = 0; i < predictors.size(); ++i) md += (i ? ", " : "") + predictors[i];
  return md + ". Schedule " + plan.schedule +
         "; the detailed experiments at T = " + std::to_string(plan.detail_T) + ". " +
         number(results.seconds, "%.3g") + " s.\n\n";
}

}  // namespace

std::string nmse_tables(const std::vector<DenoiseBenchEntry>& entries) {
  std::vector<std::tuple<std::string, int64_t, std::string>> rows;
  std::map<double, int> columns;
  std::map<std::pair<size_t, double>, const DenoiseBenchEntry*> cell;
  bool labelled = false;
  for (const DenoiseBenchEntry& e : entries) {
    const std::tuple<std::string, int64_t, std::string> key{e.predictor, e.T, e.estimator};
    size_t r = std::find(rows.begin(), rows.end(), key) - rows.begin();
    if (r == rows.size()) rows.push_back(key);
    columns[e.snr_db] = 0;
    cell[{r, e.snr_db}] = &e;
    labelled = labelled || !e.predictor.empty();
  }
  auto view = [&](const std::string& title, bool skip_references,
                  const std::function<std::string(const DenoiseBenchEntry&)>& text) {
    std::vector<std::string> head = {"T", "estimator"};
    if (labelled) head.insert(head.begin(), "predictor");
    for (const auto& [snr, unused] : columns) head.push_back(db(snr) + " dB");
    Table table(head);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& [predictor, T, estimator] = rows[r];
      if (skip_references && T == 0) continue;
      std::vector<std::string> line = {T == 0 ? "-" : std::to_string(T), estimator};
      if (labelled) line.insert(line.begin(), predictor.empty() ? "-" : predictor);
      for (const auto& [snr, unused] : columns) {
        auto found = cell.find({r, snr});
        line.push_back(found == cell.end() ? "" : text(*found->second));
      }
      table.add_row(line);
    }
    return title + "\n\n" + table.markdown() + "\n";
  };
  return view("NMSE (± one standard error over the test samples):", false,
              [](const DenoiseBenchEntry& e) {
                return number(e.nmse) + " ± " + number(e.nmse_se, "%.2g");
              }) +
         view("NMSE minus the CME's on the same observations (± one standard error):", false,
              [](const DenoiseBenchEntry& e) {
                return e.estimator == "cme"
                           ? std::string("0")
                           : number(e.gap, "%+.3g") + " ± " + number(e.gap_se, "%.2g");
              }) +
         view("Predictor evaluations per denoised batch (matched step t_hat in brackets):", true,
              [](const DenoiseBenchEntry& e) {
                return std::to_string(e.evaluations) + " (" + std::to_string(e.matched_step) + ")";
              }) +
         view("Wall time per denoised batch (seconds):", false,
              [](const DenoiseBenchEntry& e) { return number(e.seconds, "%.3g"); });
}

namespace {

std::string resampling_table(const std::vector<ResamplingRow>& rows) {
  Table table({"predictor", "T", "SNR (dB)", "off: mean forwarding", "on: ancestral run", "CME"});
  for (const ResamplingRow& r : rows)
    table.add_row({r.predictor, std::to_string(r.T), db(r.snr_db), number(r.off), number(r.on),
                   number(r.cme)});
  return "## Re-sampling off (mean forwarding) against on (one ancestral run)\n\n" +
         table.markdown() + "\n";
}

std::string mc_table(const std::vector<MonteCarloEntry>& entries) {
  Table table({"predictor", "T", "SNR (dB)", "M", "NMSE", "NMSE - CME", "NFE", "seconds"});
  for (const MonteCarloEntry& e : entries)
    table.add_row({e.predictor, std::to_string(e.T), db(e.snr_db), std::to_string(e.samples),
                   number(e.nmse) + " ± " + number(e.nmse_se, "%.2g"),
                   number(e.gap, "%+.3g") + " ± " + number(e.gap_se, "%.2g"),
                   std::to_string(e.evaluations), number(e.seconds, "%.3g")});
  return "## Monte-Carlo posterior mean against the number of runs M\n\n" + table.markdown() + "\n";
}

std::string steps_table(const std::vector<StepErrorEntry>& steps) {
  Table table(
      {"predictor", "T", "SNR (dB)", "t_hat", "start", "half-way", "last step", "estimate"});
  for (size_t i = 0; i < steps.size();) {
    size_t end = i;
    while (end < steps.size() && steps[end].snr_db == steps[i].snr_db &&
           steps[end].predictor == steps[i].predictor)
      ++end;
    const StepErrorEntry& first = steps[i];
    const size_t count = end - i;
    table.add_row({first.predictor, std::to_string(first.T), db(first.snr_db),
                   std::to_string(first.start_step), number(first.nmse),
                   number(steps[i + count / 2].nmse), number(steps[end - (count > 1 ? 2 : 1)].nmse),
                   number(steps[end - 1].nmse)});
    i = end;
  }
  return "## Mean forwarding step by step\n\nNMSE of the state after each reverse step (remaining "
         "steps 0: the estimate); every step in steps.csv.\n\n" +
         table.markdown() + "\n";
}

std::string mismatch_table(const std::vector<MismatchEntry>& entries) {
  std::vector<double> offsets;
  for (const MismatchEntry& e : entries)
    if (std::find(offsets.begin(), offsets.end(), e.offset_db) == offsets.end())
      offsets.push_back(e.offset_db);
  std::vector<std::string> head = {"estimator", "SNR (dB)"};
  for (double o : offsets) head.push_back(number(o, "%+g") + " dB");
  std::map<std::pair<std::string, double>, std::map<double, const MismatchEntry*>> cells;
  std::vector<std::pair<std::string, double>> order;
  for (const MismatchEntry& e : entries) {
    const std::pair<std::string, double> key{row_label(e.predictor, e.T, e.estimator), e.snr_db};
    if (!cells.count(key)) order.push_back(key);
    cells[key][e.offset_db] = &e;
  }
  Table table(head);
  for (const auto& key : order) {
    std::vector<std::string> line = {key.first, db(key.second)};
    for (double o : offsets) {
      auto found = cells[key].find(o);
      line.push_back(found == cells[key].end() ? "" : number(found->second->nmse));
    }
    table.add_row(line);
  }
  return "## SNR mismatch: NMSE when the denoiser is told SNR + offset\n\n" + table.markdown() +
         "\n";
}

// ---- CSV and JSON ----

void write_csvs(const fs::path& dir, const DenoiseBenchResults& results, Written& written) {
  auto csv = [&](const char* name, const std::string& head,
                 const std::vector<std::vector<std::string>>& rows) {
    write_csv(dir / name, head, rows);
    written.files.push_back(name);
  };
  const auto n = csv_number;
  std::vector<std::vector<std::string>> rows;
  if (!results.nmse.empty()) {
    for (const DenoiseBenchEntry& e : results.nmse)
      rows.push_back({e.predictor, std::to_string(e.T), e.estimator, n(e.snr_db), n(e.nmse),
                      n(e.nmse_se), n(e.gap), n(e.gap_se), std::to_string(e.matched_step),
                      std::to_string(e.evaluations), n(e.seconds)});
    csv("nmse.csv",
        "predictor,T,estimator,snr_db,nmse,nmse_se,gap_to_cme,gap_se,matched_step,nfe,seconds",
        rows);
  }
  if (!results.steps.empty()) {
    rows.clear();
    for (const StepErrorEntry& e : results.steps)
      rows.push_back({e.predictor, std::to_string(e.T), n(e.snr_db), std::to_string(e.start_step),
                      std::to_string(e.remaining), n(e.nmse), n(e.nmse_rescaled)});
    csv("steps.csv", "predictor,T,snr_db,start_step,remaining,nmse,nmse_rescaled", rows);
  }
  if (!results.resampling.empty()) {
    rows.clear();
    for (const ResamplingRow& r : results.resampling)
      rows.push_back({r.predictor, std::to_string(r.T), n(r.snr_db), n(r.off), n(r.on), n(r.cme)});
    csv("resampling.csv", "predictor,T,snr_db,nmse_off,nmse_on,nmse_cme", rows);
  }
  if (!results.mc.empty()) {
    rows.clear();
    for (const MonteCarloEntry& e : results.mc)
      rows.push_back({e.predictor, std::to_string(e.T), n(e.snr_db), std::to_string(e.samples),
                      n(e.nmse), n(e.nmse_se), n(e.gap), n(e.gap_se), std::to_string(e.evaluations),
                      n(e.seconds)});
    csv("mc.csv", "predictor,T,snr_db,M,nmse,nmse_se,gap_to_cme,gap_se,nfe,seconds", rows);
  }
  if (!results.mismatch.empty()) {
    rows.clear();
    for (const MismatchEntry& e : results.mismatch)
      rows.push_back({e.predictor, e.estimator, std::to_string(e.T), n(e.snr_db), n(e.offset_db),
                      std::to_string(e.matched_step), n(e.nmse), n(e.nmse_se)});
    csv("mismatch.csv", "predictor,estimator,T,snr_db,offset_db,matched_step,nmse,nmse_se", rows);
  }
}

// ---- plots ----

// One curve per (predictor, T, estimator) of the NMSE entries `keep` selects, y = value(entry)
// (entries it maps to nothing are left out). An estimator's oracle (dotted, open points) and
// network (solid, filled points) curves share a colour, so the learning error reads as the gap
// between the two.
std::vector<Curve> estimator_curves(
    const std::vector<DenoiseBenchEntry>& entries,
    const std::function<bool(const DenoiseBenchEntry&)>& keep,
    const std::function<std::optional<double>(const DenoiseBenchEntry&)>& value) {
  const std::map<std::string, std::string> reference_style{
      {"cme", "lines lw 3 lc rgb 'black'"},
      {"lmmse", "lines lw 3 dt 2 lc rgb 'gray40'"},
      {"ls", "lines lw 3 dt 4 lc rgb 'gray65'"}};
  std::vector<Curve> curves;
  std::map<std::string, size_t> index;
  std::map<std::string, size_t> colour;
  for (const DenoiseBenchEntry& e : entries) {
    const std::optional<double> y = keep(e) ? value(e) : std::nullopt;
    if (!y) continue;
    const std::string title = row_label(e.predictor, e.T, e.estimator);
    if (!index.count(title)) {
      index[title] = curves.size();
      std::string style;
      if (e.predictor.empty()) {
        auto known = reference_style.find(e.estimator);
        style = known != reference_style.end() ? known->second : "lines lw 3";
      } else {
        const std::string method = std::to_string(e.T) + " " + e.estimator;
        if (!colour.count(method)) colour[method] = colour.size() + 1;
        style = (e.predictor == "oracle" ? "linespoints dt 3 pt 6 lc " : "linespoints pt 7 lc ") +
                std::to_string(colour[method]);
      }
      curves.push_back({title, style, {}});
    }
    curves[index[title]].xy.push_back({e.snr_db, *y});
  }
  return curves;
}

std::vector<Plot> nmse_plots(const fs::path& dir, const DenoiseBenchResults& results) {
  const std::vector<DenoiseBenchEntry>& nmse = results.nmse;
  const int64_t detail = results.resolved.detail_T;
  const std::string axes = "set xlabel 'SNR (dB)'\nset ylabel 'NMSE (dB)'\n";
  auto in_db = [](const DenoiseBenchEntry& e) { return std::optional<double>(decibels(e.nmse)); };
  auto detailed = [&](const DenoiseBenchEntry& e) {
    return e.predictor == "network" || e.T == detail;
  };
  std::vector<Plot> plots;
  plots.push_back(curve_plot(
      dir, "nmse_vs_snr",
      "set title 'The paper''s denoiser (mean forwarding) against the CME, LMMSE and LS'\n" + axes,
      estimator_curves(
          nmse,
          [&](const DenoiseBenchEntry& e) {
            return e.predictor.empty() || (detailed(e) && e.estimator == "mean-forwarding");
          },
          in_db)));
  const bool oracle = results.resolved.runs(DenoisePredictor::oracle);
  for (const char* predictor : {"oracle", "network"}) {
    if (std::string(predictor) == "network" ? results.network_T == 0 : !oracle) continue;
    plots.push_back(curve_plot(
        dir, std::string("nmse_vs_snr_") + predictor,
        std::string("set title 'The ") + predictor + "''s estimators against the CME'\n" + axes,
        estimator_curves(
            nmse,
            [&](const DenoiseBenchEntry& e) {
              return e.estimator == "cme" || (e.predictor == predictor && detailed(e));
            },
            in_db)));
  }
  if (oracle && results.resolved.table_T().size() > 1)
    plots.push_back(curve_plot(
        dir, "nmse_vs_snr_oracle_T", "set title 'The oracle''s mean forwarding at each T'\n" + axes,
        estimator_curves(
            nmse,
            [&](const DenoiseBenchEntry& e) {
              return e.estimator == "cme" ||
                     (e.predictor == "oracle" && e.estimator == "mean-forwarding");
            },
            in_db)));
  // The DM estimators' distance to the CME, too small to see on the dB axis: the paired gap
  // over the CME's NMSE, in percent, for the MSE estimators at the detailed T.
  std::map<double, double> cme;
  for (const DenoiseBenchEntry& e : nmse)
    if (e.estimator == "cme") cme[e.snr_db] = e.nmse;
  plots.push_back(
      curve_plot(dir, "nmse_over_cme",
                 "set title 'DM denoisers: NMSE above the CME on the same observations'\n"
                 "set xlabel 'SNR (dB)'\nset ylabel 'NMSE / NMSE(CME) - 1 (%)'\n",
                 estimator_curves(
                     nmse,
                     [&](const DenoiseBenchEntry& e) {
                       return !e.predictor.empty() && detailed(e) && e.estimator != "ddim" &&
                              e.estimator != "posterior-mean-M1";
                     },
                     [&](const DenoiseBenchEntry& e) -> std::optional<double> {
                       auto reference = cme.find(e.snr_db);
                       if (reference == cme.end()) return std::nullopt;
                       return 100.0 * e.gap / reference->second;
                     })));
  return plots;
}

Plot resampling_plot(const fs::path& dir, const std::vector<ResamplingRow>& rows) {
  std::vector<Curve> curves;
  std::map<std::string, std::vector<size_t>> index;
  for (const ResamplingRow& r : rows) {
    const std::string prefix = r.predictor + " T=" + std::to_string(r.T);
    if (!index.count(prefix)) {
      index[prefix] = {curves.size(), curves.size() + 1};
      curves.push_back({prefix + " re-sampling off (mean forwarding)", "linespoints pt 7", {}});
      curves.push_back({prefix + " re-sampling on (one ancestral run)", "linespoints pt 5", {}});
    }
    curves[index[prefix][0]].xy.push_back({r.snr_db, decibels(r.off)});
    curves[index[prefix][1]].xy.push_back({r.snr_db, decibels(r.on)});
  }
  Curve cme{"CME", "lines lw 3 dt 2", {}};
  for (const ResamplingRow& r : rows)
    if (r.predictor == rows.front().predictor) cme.xy.push_back({r.snr_db, decibels(r.cme)});
  curves.push_back(cme);
  return curve_plot(dir, "resampling",
                    "set title 'Re-sampling on (generator) against off (denoiser)'\n"
                    "set xlabel 'SNR (dB)'\nset ylabel 'NMSE (dB)'\n",
                    curves);
}

Plot steps_plot(const fs::path& dir, const std::vector<StepErrorEntry>& steps) {
  std::vector<Curve> curves;
  for (const StepErrorEntry& e : steps) {
    const std::string title = e.predictor + " T=" + std::to_string(e.T) + " " + db(e.snr_db) +
                              " dB (t_hat " + std::to_string(e.start_step) + ")";
    if (curves.empty() || curves.back().title != title) curves.push_back({title, "lines lw 2", {}});
    curves.back().xy.push_back({static_cast<double>(e.remaining), decibels(e.nmse)});
  }
  return curve_plot(dir, "steps",
                    "set title 'Mean forwarding: NMSE of the state after each reverse step'\n"
                    "set xlabel 'remaining steps t'\nset xrange [*:*] reverse\n"
                    "set ylabel 'NMSE (dB)'\n",
                    curves);
}

// One predictor's curves, one per SNR, and the CME at each SNR (NMSE minus the gap) as a line.
Plot mc_plot(const fs::path& dir, const std::string& name, const std::string& predictor,
             const std::vector<MonteCarloEntry>& entries) {
  std::vector<Curve> curves;
  std::map<double, Curve> cme;
  for (const MonteCarloEntry& e : entries) {
    if (e.predictor != predictor) continue;
    const std::string title =
        e.predictor + " T=" + std::to_string(e.T) + " " + db(e.snr_db) + " dB";
    if (curves.empty() || curves.back().title != title)
      curves.push_back({title, "linespoints pt 7", {}});
    curves.back().xy.push_back({static_cast<double>(e.samples), decibels(e.nmse)});
    Curve& line = cme[e.snr_db];
    line.title = "CME " + db(e.snr_db) + " dB";
    line.style = "lines lw 3 dt 2";
    if (line.xy.empty() || line.xy.back().first < e.samples)
      line.xy.push_back({static_cast<double>(e.samples), decibels(e.nmse - e.gap)});
  }
  for (auto& [snr, line] : cme) curves.push_back(line);
  return curve_plot(dir, name,
                    "set title 'Monte-Carlo posterior mean (" + predictor +
                        "): NMSE against the number of ancestral runs M'\n"
                        "set xlabel 'M'\nset logscale x 2\nset ylabel 'NMSE (dB)'\n",
                    curves);
}

// One estimator family: the CME told the same wrong SNR (dashed) and each predictor's curve
// (oracle open points, network filled), a colour per true SNR.
Plot mismatch_plot(const fs::path& dir, const std::string& name, const std::string& estimator,
                   const std::vector<MismatchEntry>& entries) {
  std::vector<Curve> curves;
  std::map<std::string, size_t> index;
  std::map<double, size_t> colour;
  for (const MismatchEntry& e : entries) {
    if (e.estimator != estimator && e.estimator != "cme") continue;
    if (!colour.count(e.snr_db)) colour[e.snr_db] = colour.size() + 1;
    const std::string title =
        row_label(e.predictor, e.T, e.estimator) + " at " + db(e.snr_db) + " dB";
    if (!index.count(title)) {
      index[title] = curves.size();
      const std::string style = e.predictor.empty()       ? "lines lw 3 dt 2 lc "
                                : e.predictor == "oracle" ? "linespoints dt 3 pt 6 lc "
                                                          : "linespoints pt 7 lc ";
      curves.push_back({title, style + std::to_string(colour[e.snr_db]), {}});
    }
    curves[index[title]].xy.push_back({e.offset_db, decibels(e.nmse)});
  }
  return curve_plot(dir, name,
                    "set title 'SNR mismatch (" + estimator +
                        "): the denoiser told SNR + offset'\n"
                        "set xlabel 'assumed minus true SNR (dB)'\nset ylabel 'NMSE (dB)'\n",
                    curves);
}

std::vector<Plot> make_plots(const fs::path& dir, const DenoiseBenchResults& results) {
  std::vector<Plot> plots;
  if (!results.nmse.empty()) plots = nmse_plots(dir, results);
  if (!results.resampling.empty()) plots.push_back(resampling_plot(dir, results.resampling));
  if (!results.steps.empty()) plots.push_back(steps_plot(dir, results.steps));
  if (!results.mc.empty()) {
    plots.push_back(mc_plot(dir, "mc_vs_M", "oracle", results.mc));
    if (results.network_T > 0)
      plots.push_back(mc_plot(dir, "mc_vs_M_network", "network", results.mc));
  }
  if (!results.mismatch.empty()) {
    plots.push_back(mismatch_plot(dir, "mismatch", "mean-forwarding", results.mismatch));
    plots.push_back(mismatch_plot(dir, "mismatch_tweedie", "tweedie", results.mismatch));
  }
  return plots;
}

}  // namespace

std::string markdown(const DenoiseBenchResults& results) {
  std::string md = header(results) + summary(results);
  if (!results.nmse.empty()) md += "## NMSE against the SNR\n\n" + nmse_tables(results.nmse);
  if (!results.resampling.empty()) md += resampling_table(results.resampling);
  if (!results.mc.empty()) md += mc_table(results.mc);
  if (!results.steps.empty()) md += steps_table(results.steps);
  if (!results.mismatch.empty()) md += mismatch_table(results.mismatch);
  if (!results.image_shape.empty()) md += denoised_grid_section(results, grid_columns(results));
  return md;
}

nlohmann::json to_json(const DenoiseBenchResults& results) {
  nlohmann::json json;
  json["nmse"] = nlohmann::json::array();
  for (const DenoiseBenchEntry& e : results.nmse)
    json["nmse"].push_back({{"predictor", e.predictor},
                            {"T", e.T},
                            {"estimator", e.estimator},
                            {"snr_db", e.snr_db},
                            {"nmse", e.nmse},
                            {"nmse_se", e.nmse_se},
                            {"gap_to_cme", e.gap},
                            {"gap_se", e.gap_se},
                            {"matched_step", e.matched_step},
                            {"nfe", e.evaluations},
                            {"seconds", e.seconds}});
  json["steps"] = nlohmann::json::array();
  for (const StepErrorEntry& e : results.steps)
    json["steps"].push_back({{"predictor", e.predictor},
                             {"T", e.T},
                             {"snr_db", e.snr_db},
                             {"start_step", e.start_step},
                             {"remaining", e.remaining},
                             {"nmse", e.nmse},
                             {"nmse_rescaled", e.nmse_rescaled}});
  json["resampling"] = nlohmann::json::array();
  for (const ResamplingRow& r : results.resampling)
    json["resampling"].push_back({{"predictor", r.predictor},
                                  {"T", r.T},
                                  {"snr_db", r.snr_db},
                                  {"nmse_off", r.off},
                                  {"nmse_on", r.on},
                                  {"nmse_cme", r.cme}});
  json["mc"] = nlohmann::json::array();
  for (const MonteCarloEntry& e : results.mc)
    json["mc"].push_back({{"predictor", e.predictor},
                          {"T", e.T},
                          {"snr_db", e.snr_db},
                          {"M", e.samples},
                          {"nmse", e.nmse},
                          {"nmse_se", e.nmse_se},
                          {"gap_to_cme", e.gap},
                          {"gap_se", e.gap_se},
                          {"nfe", e.evaluations},
                          {"seconds", e.seconds}});
  json["mismatch"] = nlohmann::json::array();
  for (const MismatchEntry& e : results.mismatch)
    json["mismatch"].push_back({{"predictor", e.predictor},
                                {"estimator", e.estimator},
                                {"T", e.T},
                                {"snr_db", e.snr_db},
                                {"offset_db", e.offset_db},
                                {"matched_step", e.matched_step},
                                {"nmse", e.nmse},
                                {"nmse_se", e.nmse_se}});
  const DenoiseBenchPlan& run = results.resolved;
  json["config"] = results.plan.to_json();
  json["gmm"] = run.gmm;
  json["checkpoint"] = run.checkpoint;
  json["dim"] = results.dim;
  json["components"] = results.components;
  json["samples"] = run.samples;
  json["power_per_entry"] = results.power_per_entry;
  json["schedule"] = run.schedule;
  json["detail_T"] = run.detail_T;
  json["oracle_T"] = run.table_T();
  json["seconds"] = results.seconds;
  return json;
}

Written write(const DenoiseBenchResults& results, const fs::path& dir, const std::string& command) {
  Written written{markdown(results), {"denoise_bench.md", "denoise_bench.json"}, {}};
  write_text(dir / "denoise_bench.md", written.markdown);
  write_text(dir / "denoise_bench.json", to_json(results).dump(2) + "\n");
  write_csvs(dir, results, written);
  written.plots = render_plots(make_plots(dir, results), dir, command);
  if (!results.image_shape.empty()) {
    write_denoised_grid(results, grid_columns(results), dir / "denoised.png");
    written.files.push_back("denoised.png");
  }
  return written;
}

}  // namespace dpm::experiments::report
