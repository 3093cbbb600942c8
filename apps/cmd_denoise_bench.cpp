// dpmlab denoise-bench: the DM-based denoisers against the GMM's exact estimators
// (docs/protocol.md), with the exact oracle eps* and, given a checkpoint, the trained network
// (diffusion/denoise_bench.hpp): NMSE against the SNR, the error after every reverse step,
// re-sampling on against off and the Monte-Carlo posterior mean against M, a wrong assumed SNR, and
// the cost (NFE, wall time) of each. Writes a CSV per experiment, denoise_bench.json (with the
// config), denoise_bench.md (also printed) and gnuplot plots (each .gp beside its PNG) into --out.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/flag_config.hpp"
#include "apps/value_lists.hpp"
#include "autograd/progress_line.hpp"
#include "datasets/data_files.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/denoise_bench.hpp"
#include "diffusion/oracle.hpp"
#include "experiments/report/files.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"

namespace dpm::cli {
namespace {

using experiments::report::Plot;
using experiments::report::render_plots;
using experiments::report::write_text;

namespace fs = std::filesystem;
using diffusion::DenoiseBenchEntry;
using diffusion::Estimator;
using diffusion::MismatchEntry;
using diffusion::MonteCarloEntry;
using diffusion::StepErrorEntry;

const char* const kExperimentNames[] = {"nmse", "steps", "resampling", "mismatch"};

// The oracle's T for the costly estimators when no network fixes it: small enough that the
// M = 64 Monte-Carlo mean stays fast (the reference figures of docs/protocol.md, The denoiser,
// are alike for T = 50..5000).
constexpr int64_t kOracleDetailT = 50;

struct BenchArgs {
  CommonArgs common;
  std::string gmm, checkpoint, experiments = "nmse,steps,resampling,mismatch", snr = "-20:30:5",
                               T = "10,50,300,1000", schedule, step_snr = "-10,0,10",
                               mc_M = "1,2,4,8,16,32,64", mc_snr = "-10,0,10", mismatch = "-6:6:2",
                               mismatch_snr = "-10,0,10", estimators = "all";
  int64_t samples = 64, detail_T = 0, mc_samples = 8;  // detail_T 0: the checkpoint's, or 50
};

// What the flags ask for, checked and parsed.
struct BenchPlan {
  std::set<std::string> experiments;
  std::vector<double> snr, step_snr, mc_snr, mismatch, mismatch_snr;
  std::vector<int64_t> oracle_T, mc_M;
};

// One predictor with its schedule and label, at the T of the detailed experiments.
struct Contender {
  std::string label;  // "oracle" or "network"
  diffusion::Schedule schedule;
  std::shared_ptr<diffusion::NoisePredictor> predictor;
  Shape sample_shape;
};

std::set<std::string> parse_experiments(const std::string& text) {
  std::set<std::string> chosen;
  std::stringstream in(text);
  for (std::string name; std::getline(in, name, ',');) {
    bool known = false;
    for (const char* valid : kExperimentNames) known = known || name == valid;
    if (!known)
      throw CLI::ValidationError("--experiments",
                                 "unknown experiment '" + name +
                                     "' (expected a list of nmse, steps, resampling, mismatch)");
    chosen.insert(name);
  }
  if (chosen.empty()) throw CLI::ValidationError("--experiments", "is empty");
  return chosen;
}

// The estimators of the NMSE table at the detailed T: mean forwarding (re-sampling off),
// one-step Tweedie, one ancestral run (re-sampling on, a generator), the Monte-Carlo posterior
// mean over M runs and DDIM; at the oracle's other T (and with --estimators cheap), the cheap
// ones only.
std::vector<Estimator> nmse_estimators(bool detailed, int64_t mc_samples) {
  std::vector<std::string> names = {"mean-forwarding", "tweedie"};
  if (detailed) {
    names.push_back("posterior-mean-M1");
    if (mc_samples > 1) names.push_back("posterior-mean-M" + std::to_string(mc_samples));
    names.push_back("ddim");
  }
  std::vector<Estimator> estimators;
  for (const std::string& name : names) estimators.push_back(Estimator::parse(name));
  return estimators;
}

std::vector<Estimator> mismatch_estimators() {
  return {Estimator::parse("mean-forwarding"), Estimator::parse("tweedie")};
}

double decibels(double nmse) {
  return 10.0 * std::log10(nmse);
}

std::string row_label(const std::string& predictor, int64_t T, const std::string& estimator) {
  if (predictor.empty()) return estimator;
  return predictor + " T=" + std::to_string(T) + " " + estimator;
}

// ---- plots: one data block per curve in NAME.dat, and its gnuplot script ----

struct Curve {
  std::string title, style;                   // style: e.g. "linespoints pt 7", "lines dt 2"
  std::vector<std::pair<double, double>> xy;  // y in dB
};

Plot curve_plot(const fs::path& dir, const std::string& name, const std::string& settings,
                const std::vector<Curve>& curves) {
  std::ostringstream data;
  std::string plot = "plot ";
  for (size_t i = 0; i < curves.size(); ++i) {
    data << "# " << curves[i].title << "\n";
    for (const auto& [x, y] : curves[i].xy) data << experiments::report::plot_number(x) << ' ' << experiments::report::plot_number(y) << '\n';
    data << "\n\n";
    std::string title = curves[i].title;
    for (char& c : title)
      if (c == '\'') c = '"';
    plot += (i ? ", \\\n     " : "") +
            ("'" + name + ".dat' index " + std::to_string(i) + " using 1:2 with " +
             curves[i].style + " title '" + title + "'");
  }
  write_text(dir / (name + ".dat"), data.str());
  return {name, "set terminal pngcairo size 1000,750 noenhanced\nset output '" + name +
                    ".png'\nset key outside right top\nset grid\n" + settings + plot + "\n"};
}

// ---- outputs ----

struct Results {
  std::vector<DenoiseBenchEntry> nmse;
  std::vector<StepErrorEntry> steps;
  std::vector<MonteCarloEntry> mc;
  std::vector<MismatchEntry> mismatch;
};

const DenoiseBenchEntry* find_entry(const std::vector<DenoiseBenchEntry>& entries,
                                    const std::string& predictor, const std::string& estimator,
                                    int64_t T, double snr_db) {
  for (const DenoiseBenchEntry& e : entries)
    if (e.predictor == predictor && e.estimator == estimator && e.T == T && e.snr_db == snr_db)
      return &e;
  return nullptr;
}

// Re-sampling off (mean forwarding) against on (one ancestral run) and the CME, per SNR: a view
// of the NMSE experiment's entries at the detailed T.
struct ResamplingRow {
  std::string predictor;
  int64_t T;
  double snr_db, off, on, cme;
};

std::vector<ResamplingRow> resampling_rows(const std::vector<DenoiseBenchEntry>& entries,
                                           const std::vector<Contender>& contenders,
                                           const std::vector<double>& snr) {
  std::vector<ResamplingRow> rows;
  for (const Contender& c : contenders)
    for (double s : snr) {
      const DenoiseBenchEntry* off =
          find_entry(entries, c.label, "mean-forwarding", c.schedule.T(), s);
      const DenoiseBenchEntry* on =
          find_entry(entries, c.label, "posterior-mean-M1", c.schedule.T(), s);
      const DenoiseBenchEntry* cme = find_entry(entries, "", "cme", 0, s);
      if (off && on && cme)
        rows.push_back({c.label, c.schedule.T(), s, off->nmse, on->nmse, cme->nmse});
    }
  return rows;
}

void write_csv(const fs::path& path, const std::string& header,
               const std::vector<std::string>& lines) {
  std::string text = header + "\n";
  for (const std::string& line : lines) text += line + "\n";
  write_text(path, text);
}

std::string join_cells(std::initializer_list<std::string> cells) {
  std::string line;
  bool first = true;
  for (const std::string& cell : cells) {
    line += (first ? "" : ",") + cell;
    first = false;
  }
  return line;
}

std::string g(double v) {
  return experiments::report::number(v, "%.10g");
}

std::string markdown(const Results& results, const std::vector<ResamplingRow>& resampling,
                     const std::string& header) {
  std::string md = header;
  if (!results.nmse.empty())
    md += "## NMSE against the SNR\n\n" + diffusion::denoise_bench_markdown(results.nmse);
  if (!resampling.empty()) {
    md +=
        "## Re-sampling off (mean forwarding) against on (one ancestral run)\n\n"
        "| predictor | T | SNR (dB) | off: mean forwarding | on: ancestral run | CME |\n"
        "|---|---|---|---|---|---|\n";
    for (const ResamplingRow& r : resampling)
      md += "| " + r.predictor + " | " + std::to_string(r.T) + " | " +
            experiments::report::number(r.snr_db, "%g") + " | " + experiments::report::number(r.off) + " | " +
            experiments::report::number(r.on) + " | " + experiments::report::number(r.cme) + " |\n";
    md += "\n";
  }
  if (!results.mc.empty()) {
    md +=
        "## Monte-Carlo posterior mean against the number of runs M\n\n"
        "| predictor | T | SNR (dB) | M | NMSE | NMSE - CME | NFE | seconds |\n"
        "|---|---|---|---|---|---|---|---|\n";
    for (const MonteCarloEntry& e : results.mc)
      md += "| " + e.predictor + " | " + std::to_string(e.T) + " | " +
            experiments::report::number(e.snr_db, "%g") + " | " + std::to_string(e.samples) + " | " +
            experiments::report::number(e.nmse) + " ± " + experiments::report::number(e.nmse_se, "%.2g") + " | " +
            experiments::report::number(e.gap, "%+.3g") + " ± " + experiments::report::number(e.gap_se, "%.2g") + " | " +
            std::to_string(e.evaluations) + " | " + experiments::report::number(e.seconds, "%.3g") + " |\n";
    md += "\n";
  }
  if (!results.steps.empty()) {
    md +=
        "## Mean forwarding step by step\n\nNMSE of the state after each reverse step (remaining "
        "steps 0: the estimate); every step in steps.csv.\n\n"
        "| predictor | T | SNR (dB) | t_hat | start | half-way | last step | estimate |\n"
        "|---|---|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < results.steps.size();) {
      size_t end = i;
      while (end < results.steps.size() && results.steps[end].snr_db == results.steps[i].snr_db &&
             results.steps[end].predictor == results.steps[i].predictor)
        ++end;
      const StepErrorEntry& first = results.steps[i];
      const size_t count = end - i;
      md += "| " + first.predictor + " | " + std::to_string(first.T) + " | " +
            experiments::report::number(first.snr_db, "%g") + " | " + std::to_string(first.start_step) + " | " +
            experiments::report::number(first.nmse) + " | " + experiments::report::number(results.steps[i + count / 2].nmse) +
            " | " + experiments::report::number(results.steps[end - (count > 1 ? 2 : 1)].nmse) + " | " +
            experiments::report::number(results.steps[end - 1].nmse) + " |\n";
      i = end;
    }
    md += "\n";
  }
  if (!results.mismatch.empty()) {
    std::vector<double> offsets;
    for (const MismatchEntry& e : results.mismatch)
      if (std::find(offsets.begin(), offsets.end(), e.offset_db) == offsets.end())
        offsets.push_back(e.offset_db);
    md +=
        "## SNR mismatch: NMSE when the denoiser is told SNR + offset\n\n| estimator | SNR (dB) |";
    for (double o : offsets) md += " " + experiments::report::number(o, "%+g") + " dB |";
    md += "\n|---|---|";
    for (size_t i = 0; i < offsets.size(); ++i) md += "---|";
    md += "\n";
    std::map<std::pair<std::string, double>, std::map<double, const MismatchEntry*>> table;
    std::vector<std::pair<std::string, double>> order;
    for (const MismatchEntry& e : results.mismatch) {
      const std::pair<std::string, double> key{row_label(e.predictor, e.T, e.estimator), e.snr_db};
      if (!table.count(key)) order.push_back(key);
      table[key][e.offset_db] = &e;
    }
    for (const auto& key : order) {
      md += "| " + key.first + " | " + experiments::report::number(key.second, "%g") + " |";
      for (double o : offsets) {
        auto found = table[key].find(o);
        md += " " +
              (found == table[key].end() ? std::string() : experiments::report::number(found->second->nmse)) +
              " |";
      }
      md += "\n";
    }
    md += "\n";
  }
  return md;
}

void write_csvs(const fs::path& out, const Results& results,
                const std::vector<ResamplingRow>& resampling) {
  std::vector<std::string> lines;
  if (!results.nmse.empty()) {
    for (const DenoiseBenchEntry& e : results.nmse)
      lines.push_back(
          join_cells({e.predictor, std::to_string(e.T), e.estimator, g(e.snr_db), g(e.nmse),
                      g(e.nmse_se), g(e.gap), g(e.gap_se), std::to_string(e.matched_step),
                      std::to_string(e.evaluations), g(e.seconds)}));
    write_csv(out / "nmse.csv",
              "predictor,T,estimator,snr_db,nmse,nmse_se,gap_to_cme,gap_se,matched_step,nfe,"
              "seconds",
              lines);
  }
  if (!results.steps.empty()) {
    lines.clear();
    for (const StepErrorEntry& e : results.steps)
      lines.push_back(
          join_cells({e.predictor, std::to_string(e.T), g(e.snr_db), std::to_string(e.start_step),
                      std::to_string(e.remaining), g(e.nmse), g(e.nmse_rescaled)}));
    write_csv(out / "steps.csv", "predictor,T,snr_db,start_step,remaining,nmse,nmse_rescaled",
              lines);
  }
  if (!resampling.empty()) {
    lines.clear();
    for (const ResamplingRow& r : resampling)
      lines.push_back(
          join_cells({r.predictor, std::to_string(r.T), g(r.snr_db), g(r.off), g(r.on), g(r.cme)}));
    write_csv(out / "resampling.csv", "predictor,T,snr_db,nmse_off,nmse_on,nmse_cme", lines);
  }
  if (!results.mc.empty()) {
    lines.clear();
    for (const MonteCarloEntry& e : results.mc)
      lines.push_back(join_cells({e.predictor, std::to_string(e.T), g(e.snr_db),
                                  std::to_string(e.samples), g(e.nmse), g(e.nmse_se), g(e.gap),
                                  g(e.gap_se), std::to_string(e.evaluations), g(e.seconds)}));
    write_csv(out / "mc.csv", "predictor,T,snr_db,M,nmse,nmse_se,gap_to_cme,gap_se,nfe,seconds",
              lines);
  }
  if (!results.mismatch.empty()) {
    lines.clear();
    for (const MismatchEntry& e : results.mismatch)
      lines.push_back(
          join_cells({e.predictor, e.estimator, std::to_string(e.T), g(e.snr_db), g(e.offset_db),
                      std::to_string(e.matched_step), g(e.nmse), g(e.nmse_se)}));
    write_csv(out / "mismatch.csv",
              "predictor,estimator,T,snr_db,offset_db,matched_step,nmse,nmse_se", lines);
  }
}

nlohmann::json results_json(const Results& results, const std::vector<ResamplingRow>& resampling) {
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
  for (const ResamplingRow& r : resampling)
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
  return json;
}

// One curve per (predictor, T, estimator) of the NMSE table against the SNR, y = value(entry)
// (entries it maps to nothing are left out). An estimator's oracle (dotted, open points) and
// network (solid, filled points) curves share a colour, so the learning error reads as the gap
// between the two.
std::vector<Curve> estimator_curves(
    const std::vector<DenoiseBenchEntry>& entries,
    const std::function<std::optional<double>(const DenoiseBenchEntry&)>& value) {
  const std::map<std::string, std::string> reference_style{
      {"cme", "lines lw 3 lc rgb 'black'"},
      {"lmmse", "lines lw 3 dt 2 lc rgb 'gray40'"},
      {"ls", "lines lw 3 dt 4 lc rgb 'gray65'"}};
  std::vector<Curve> curves;
  std::map<std::string, size_t> index;
  std::map<std::string, size_t> colour;
  for (const DenoiseBenchEntry& e : entries) {
    const std::optional<double> y = value(e);
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

std::vector<Plot> make_plots(const fs::path& out, const Results& results,
                             const std::vector<ResamplingRow>& resampling) {
  const std::string nmse_axis = "set ylabel 'NMSE (dB)'\n";
  std::vector<Plot> plots;
  if (!results.nmse.empty()) {
    plots.push_back(curve_plot(
        out, "nmse_vs_snr",
        "set title 'Denoisers: NMSE against the SNR'\nset xlabel 'SNR (dB)'\n" + nmse_axis,
        estimator_curves(results.nmse, [](const DenoiseBenchEntry& e) {
          return std::optional<double>(decibels(e.nmse));
        })));
    // The DM estimators' distance to the CME, too small to see on the dB axis above: the paired
    // gap over the CME's NMSE, in percent.
    std::map<double, double> cme;
    for (const DenoiseBenchEntry& e : results.nmse)
      if (e.estimator == "cme") cme[e.snr_db] = e.nmse;
    plots.push_back(curve_plot(
        out, "nmse_over_cme",
        "set title 'DM denoisers: NMSE above the CME on the same observations'\n"
        "set xlabel 'SNR (dB)'\nset ylabel 'NMSE / NMSE(CME) - 1 (%)'\n",
        estimator_curves(results.nmse, [&](const DenoiseBenchEntry& e) -> std::optional<double> {
          auto reference = cme.find(e.snr_db);
          if (e.predictor.empty() || reference == cme.end()) return std::nullopt;
          return 100.0 * e.gap / reference->second;
        })));
  }
  if (!resampling.empty()) {
    std::vector<Curve> curves;
    std::map<std::string, std::vector<size_t>> index;
    for (const ResamplingRow& r : resampling) {
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
    for (const ResamplingRow& r : resampling)
      if (r.predictor == resampling.front().predictor)
        cme.xy.push_back({r.snr_db, decibels(r.cme)});
    curves.push_back(cme);
    plots.push_back(curve_plot(out, "resampling",
                               "set title 'Re-sampling on (generator) against off (denoiser)'\n"
                               "set xlabel 'SNR (dB)'\n" +
                                   nmse_axis,
                               curves));
  }
  if (!results.steps.empty()) {
    std::vector<Curve> curves;
    for (const StepErrorEntry& e : results.steps) {
      const std::string title = e.predictor + " T=" + std::to_string(e.T) + " " +
                                experiments::report::number(e.snr_db, "%g") + " dB (t_hat " +
                                std::to_string(e.start_step) + ")";
      if (curves.empty() || curves.back().title != title)
        curves.push_back({title, "lines lw 2", {}});
      curves.back().xy.push_back({static_cast<double>(e.remaining), decibels(e.nmse)});
    }
    plots.push_back(curve_plot(out, "steps",
                               "set title 'Mean forwarding: NMSE of the state after each reverse "
                               "step'\nset xlabel 'remaining steps t'\nset xrange [*:*] reverse\n" +
                                   nmse_axis,
                               curves));
  }
  if (!results.mc.empty()) {
    // One curve per (predictor, SNR), and the CME at each SNR (NMSE minus the gap) as a line.
    std::vector<Curve> curves;
    std::map<double, Curve> cme;
    for (const MonteCarloEntry& e : results.mc) {
      const std::string title =
          e.predictor + " T=" + std::to_string(e.T) + " " + experiments::report::number(e.snr_db, "%g") + " dB";
      if (curves.empty() || curves.back().title != title)
        curves.push_back({title, "linespoints pt 7", {}});
      curves.back().xy.push_back({static_cast<double>(e.samples), decibels(e.nmse)});
      Curve& line = cme[e.snr_db];
      line.title = "CME " + experiments::report::number(e.snr_db, "%g") + " dB";
      line.style = "lines lw 3 dt 2";
      if (line.xy.empty() || line.xy.back().first < e.samples)
        line.xy.push_back({static_cast<double>(e.samples), decibels(e.nmse - e.gap)});
    }
    for (auto& [snr, line] : cme) curves.push_back(line);
    plots.push_back(curve_plot(out, "mc_vs_M",
                               "set title 'Monte-Carlo posterior mean: NMSE against the number of "
                               "ancestral runs M'\nset xlabel 'M'\nset logscale x 2\n" +
                                   nmse_axis,
                               curves));
  }
  if (!results.mismatch.empty()) {
    std::vector<Curve> curves;
    std::map<std::string, size_t> index;
    for (const MismatchEntry& e : results.mismatch) {
      const std::string title =
          row_label(e.predictor, e.T, e.estimator) + " at " + experiments::report::number(e.snr_db, "%g") + " dB";
      if (!index.count(title)) {
        index[title] = curves.size();
        curves.push_back({title, e.predictor.empty() ? "lines lw 3 dt 2" : "linespoints pt 7", {}});
      }
      curves[index[title]].xy.push_back({e.offset_db, decibels(e.nmse)});
    }
    plots.push_back(curve_plot(out, "mismatch",
                               "set title 'SNR mismatch: the denoiser told SNR + offset'\n"
                               "set xlabel 'assumed minus true SNR (dB)'\n" +
                                   nmse_axis,
                               curves));
  }
  return plots;
}

// Average power per entry of the GMM, (tr C + ||m||^2) / N with its mean m and covariance C:
// 1 for data normalised as `gmm make` does, the scale on which SNR = 1 / sigma^2.
double power_per_entry(const datasets::Gmm& gmm) {
  const std::vector<double> mean = gmm.mixture_mean(), covariance = gmm.mixture_covariance();
  double power = 0.0;
  for (int64_t i = 0; i < gmm.dim; ++i) power += covariance[i * gmm.dim + i] + mean[i] * mean[i];
  return power / static_cast<double>(gmm.dim);
}

// A network trained on a step range (objective first_step..last_step) has never seen the steps
// above it; a denoiser that starts there gets an untrained answer, so say which SNRs do.
void warn_outside_trained_steps(const diffusion::DpmCheckpoint& checkpoint, const BenchPlan& plan) {
  const int64_t last = checkpoint.objective.last_step_for(checkpoint.schedule.T());
  if (last == checkpoint.schedule.T()) return;
  std::set<double> outside;
  auto check = [&](const char* experiment, const std::vector<double>& snrs) {
    if (plan.experiments.count(experiment) == 0) return;
    for (double db : snrs)
      if (checkpoint.schedule.nearest_step(std::pow(10.0, db / 10.0)) > last) outside.insert(db);
  };
  check("nmse", plan.snr);
  check("resampling", plan.mc_snr);
  check("steps", plan.step_snr);
  check("mismatch", plan.mismatch_snr);
  if (outside.empty()) return;
  std::string list;
  for (double db : outside) list += (list.empty() ? "" : ", ") + g(db);
  std::cerr << "dpmlab denoise-bench: warning: the network was trained on steps "
            << checkpoint.objective.first_step << ".." << last << " of " << checkpoint.schedule.T()
            << ", but at SNR " << list << " dB the denoiser starts above step " << last
            << ": the network's figures there are outside its training\n";
}

void run_bench(const CLI::App* command, BenchArgs& args) {
  FlagConfig config(command, args.common);
  config.text("--gmm", args.gmm);
  config.text("--checkpoint", args.checkpoint);
  config.text("--experiments", args.experiments);
  config.integer("--samples", args.samples, 2);
  config.text("--snr", args.snr);
  config.text("--T", args.T);
  config.text("--schedule", args.schedule);
  config.integer("--detail-T", args.detail_T, 0);
  config.integer("--mc-samples", args.mc_samples);
  config.text("--step-snr", args.step_snr);
  config.text("--mc-M", args.mc_M);
  config.text("--mc-snr", args.mc_snr);
  config.text("--mismatch", args.mismatch);
  config.text("--mismatch-snr", args.mismatch_snr);
  config.text("--estimators", args.estimators);
  config.seed(args.common.seed);
  const nlohmann::json used = config.finish();

  if (args.estimators != "all" && args.estimators != "cheap")
    throw CLI::ValidationError("--estimators",
                               "must be all or cheap, got '" + args.estimators + "'");
  BenchPlan plan;
  plan.experiments = parse_experiments(args.experiments);
  plan.snr = parse_number_list(args.snr, "--snr");
  plan.oracle_T = parse_integer_list(args.T, "--T", 1, 100000);
  plan.step_snr = parse_number_list(args.step_snr, "--step-snr");
  plan.mc_M = parse_integer_list(args.mc_M, "--mc-M", 1, 100000);
  std::sort(plan.mc_M.begin(), plan.mc_M.end());
  plan.mc_snr = parse_number_list(args.mc_snr, "--mc-snr");
  plan.mismatch = parse_number_list(args.mismatch, "--mismatch");
  plan.mismatch_snr = parse_number_list(args.mismatch_snr, "--mismatch-snr");

  // The network, if any, fixes the schedule of the detailed experiments: it runs at its own T.
  std::optional<diffusion::DpmCheckpoint> checkpoint;
  datasets::TrainingData data;
  if (!args.checkpoint.empty()) {
    checkpoint = diffusion::load_dpm_checkpoint(args.checkpoint);
    data = datasets::training_data(checkpoint->metadata, args.checkpoint);
    const diffusion::Schedule& own = checkpoint->schedule;
    if (args.detail_T != 0 && args.detail_T != own.T())
      throw CLI::ValidationError("--checkpoint",
                                 "the network was trained with T = " + std::to_string(own.T()) +
                                     " and runs only at its own T, but --detail-T is " +
                                     std::to_string(args.detail_T) + " (drop --detail-T or give " +
                                     std::to_string(own.T()) + "; --T sets the oracle's other T)");
    const std::string own_kind = diffusion::schedule_kind_name(own.kind());
    if (!args.schedule.empty() && args.schedule != own_kind)
      throw CLI::ValidationError("--checkpoint", "the network was trained with the " + own_kind +
                                                     " schedule, but --schedule is " +
                                                     args.schedule + " (drop --schedule)");
    args.detail_T = own.T();
    args.schedule = own_kind;
  }
  if (args.detail_T == 0) args.detail_T = kOracleDetailT;
  if (args.schedule.empty()) args.schedule = "paper_linear";
  const diffusion::ScheduleKind kind =
      as_usage_error("--schedule", [&] { return diffusion::parse_schedule_kind(args.schedule); });

  // The prior: --gmm, else the GMM of the network's training data directory.
  std::string gmm_path = args.gmm;
  if (gmm_path.empty() && !data.source.empty() &&
      fs::exists(fs::path(data.source) / datasets::kGmmFileName))
    gmm_path = (fs::path(data.source) / datasets::kGmmFileName).string();
  if (gmm_path.empty())
    throw CLI::ValidationError("--gmm", "is required: the prior, a " +
                                            std::string(datasets::kGmmFileName) +
                                            " written by `dpmlab gmm make`");
  if (!fs::exists(gmm_path))
    throw CLI::ValidationError("--gmm", "'" + gmm_path + "' does not exist");
  const datasets::Gmm gmm = datasets::load_gmm(gmm_path);

  std::vector<Contender> contenders;
  const diffusion::Schedule detail_schedule = diffusion::Schedule::make(kind, args.detail_T);
  contenders.push_back({"oracle", detail_schedule,
                        std::make_shared<diffusion::GmmOracle>(gmm, detail_schedule), Shape{}});
  if (checkpoint) {
    const Shape model_shape =
        data.model_shape ? *data.model_shape : as_usage_error("--checkpoint", [&] {
          return datasets::model_input_shape(checkpoint->model->config(), Shape{gmm.dim});
        });
    if (model_shape.numel() != gmm.dim)
      throw CLI::ValidationError("--gmm", "the GMM has dimension " + std::to_string(gmm.dim) +
                                              ", the network (--checkpoint) takes samples of "
                                              "shape " +
                                              model_shape.str());
    contenders.push_back(
        {"network", checkpoint->schedule, diffusion::make_predictor(*checkpoint), model_shape});
    warn_outside_trained_steps(*checkpoint, plan);
  }
  start_run(args.common);
  write_used_config(args.common, used);

  // SNR = 1 / sigma^2 holds on unit-power data: the GMM must describe the normalised data (the
  // gmm.safetensors of `gmm make` or `gmm fit --sample`, which the network was trained on).
  const double power = power_per_entry(gmm);
  if (power < 0.8 || power > 1.25)
    std::cerr << "dpmlab denoise-bench: warning: SNR = 1 / sigma^2 assumes unit average power per "
                 "entry; this GMM has "
              << power
              << " (not normalised? use the gmm.safetensors of a `gmm make` or `gmm fit "
                 "--sample` data set)\n";
  Rng draw_rng = Rng(args.common.seed).split(0);
  const Tensor x_test = gmm.sample(args.samples, draw_rng);
  const uint64_t noise_seed = Rng(args.common.seed).split(1).next_u64();

  // The oracle's T for the NMSE table: --T, plus the detailed T.
  std::vector<int64_t> oracle_T = plan.oracle_T;
  if (std::find(oracle_T.begin(), oracle_T.end(), args.detail_T) == oracle_T.end())
    oracle_T.push_back(args.detail_T);
  const bool nmse = plan.experiments.count("nmse") > 0,
             resampling = plan.experiments.count("resampling") > 0,
             steps = plan.experiments.count("steps") > 0,
             mismatch = plan.experiments.count("mismatch") > 0;
  // The resampling experiment reads the NMSE table's mean forwarding and ancestral run when the
  // table has them, else runs those two itself.
  const bool all_estimators = args.estimators == "all",
             resampling_from_table = nmse && all_estimators;
  const int64_t snrs = static_cast<int64_t>(plan.snr.size());
  int64_t total = 0;
  if (nmse) {
    for (size_t i = 0; i < oracle_T.size(); ++i)
      total += snrs *
               static_cast<int64_t>(nmse_estimators(all_estimators && oracle_T[i] == args.detail_T,
                                                    args.mc_samples)
                                        .size() +
                                    (i == 0 ? 3 : 0));  // the references, once
    if (checkpoint)
      total += snrs * static_cast<int64_t>(nmse_estimators(all_estimators, args.mc_samples).size());
  }
  if (resampling && !resampling_from_table) {
    total += snrs * (3 + 2 * static_cast<int64_t>(contenders.size()));
  }
  const auto per_contender = static_cast<int64_t>(contenders.size());
  if (resampling) total += per_contender * static_cast<int64_t>(plan.mc_snr.size());
  if (steps) total += per_contender * static_cast<int64_t>(plan.step_snr.size());
  if (mismatch)
    total += per_contender * static_cast<int64_t>(plan.mismatch_snr.size() * plan.mismatch.size());

  ProgressLine progress("denoise-bench", total, "parts",
                               args.common.quiet ? nullptr : stderr, 1.0);
  int64_t done = 0;
  std::string stage;
  auto step_progress = [&] { progress.update(++done, stage); };

  Results results;
  std::vector<DenoiseBenchEntry> resampling_source;  // mean forwarding and one ancestral run
  auto run_table = [&](const Contender& c, const diffusion::Schedule& schedule,
                       diffusion::NoisePredictor& predictor, std::vector<Estimator> estimators,
                       bool references, std::vector<DenoiseBenchEntry>& into) {
    diffusion::DenoiseBenchOptions options;
    options.snr_db = plan.snr;
    options.estimators = std::move(estimators);
    options.references = references;
    options.seed = noise_seed;
    options.predictor = c.label;
    options.sample_shape = c.sample_shape;
    options.on_entry = [&](const DenoiseBenchEntry&) { step_progress(); };
    stage = c.label + " T=" + std::to_string(schedule.T()) + ": NMSE against the SNR";
    const std::vector<DenoiseBenchEntry> entries =
        diffusion::run_denoise_bench(gmm, x_test, schedule, predictor, options);
    into.insert(into.end(), entries.begin(), entries.end());
  };
  if (nmse) {
    bool references = true;
    for (int64_t T : oracle_T) {
      const bool detailed = all_estimators && T == args.detail_T;
      const diffusion::Schedule schedule = diffusion::Schedule::make(kind, T);
      diffusion::GmmOracle oracle(gmm, schedule);
      run_table(contenders[0], schedule, oracle, nmse_estimators(detailed, args.mc_samples),
                references, results.nmse);
      references = false;
    }
    if (checkpoint)
      run_table(contenders[1], contenders[1].schedule, *contenders[1].predictor,
                nmse_estimators(all_estimators, args.mc_samples), false, results.nmse);
  }
  if (resampling_from_table) {
    resampling_source = results.nmse;
  } else if (resampling) {
    for (const Contender& c : contenders)
      run_table(c, c.schedule, *c.predictor,
                {Estimator::parse("mean-forwarding"), Estimator::parse("posterior-mean-M1")},
                &c == &contenders.front(), resampling_source);
  }

  for (const Contender& c : contenders) {
    const diffusion::DenoiseExperiment experiment{
        gmm, x_test, c.schedule, *c.predictor, c.label, c.sample_shape, noise_seed, step_progress};
    const std::string prefix = c.label + " T=" + std::to_string(c.schedule.T()) + ": ";
    if (resampling) {
      stage = prefix + "posterior mean against M";
      const auto entries =
          diffusion::run_posterior_mean_convergence(experiment, plan.mc_snr, plan.mc_M);
      results.mc.insert(results.mc.end(), entries.begin(), entries.end());
    }
    if (steps) {
      stage = prefix + "per-step error";
      const auto entries = diffusion::run_step_errors(experiment, plan.step_snr);
      results.steps.insert(results.steps.end(), entries.begin(), entries.end());
    }
    if (mismatch) {
      stage = prefix + "SNR mismatch";
      const auto entries =
          diffusion::run_snr_mismatch(experiment, mismatch_estimators(), plan.mismatch_snr,
                                      plan.mismatch, &c == &contenders.front());
      results.mismatch.insert(results.mismatch.end(), entries.begin(), entries.end());
    }
  }
  progress.finish();
  const double seconds = progress.elapsed_seconds();

  const std::vector<ResamplingRow> resampling_table =
      resampling ? resampling_rows(resampling_source, contenders, plan.snr)
                 : std::vector<ResamplingRow>{};
  const fs::path out(args.common.out);
  std::ostringstream header;
  header << "# Denoising benchmark\n\nPrior: " << gmm_path << " (N = " << gmm.dim
         << ", K = " << gmm.components << ", average power per entry " << experiments::report::number(power)
         << "); " << args.samples << " test samples drawn from it (seed " << args.common.seed
         << "); y = x + n, n ~ N(0, sigma^2 I), SNR = 1 / sigma^2; NMSE = sum ||x - x_hat||^2 / "
            "sum ||x||^2. Predictors: oracle = the exact eps* of the GMM";
  if (checkpoint)
    header << ", network = " << args.checkpoint << " (T = " << checkpoint->schedule.T() << ")";
  header << ". Schedule " << args.schedule << "; the detailed experiments at T = " << args.detail_T
         << ". " << experiments::report::number(seconds, "%.3g") << " s.\n\n";
  const std::string md = markdown(results, resampling_table, header.str());
  write_text(out / "denoise_bench.md", md);
  write_csvs(out, results, resampling_table);
  nlohmann::json json = results_json(results, resampling_table);
  json["config"] = used;
  json["gmm"] = gmm_path;
  json["checkpoint"] = args.checkpoint;
  json["dim"] = gmm.dim;
  json["components"] = gmm.components;
  json["samples"] = args.samples;
  json["power_per_entry"] = power;
  json["schedule"] = args.schedule;
  json["detail_T"] = args.detail_T;
  json["oracle_T"] = oracle_T;
  json["seconds"] = seconds;
  write_text(out / "denoise_bench.json", json.dump(2) + "\n");
  std::string plotted;
  for (const std::string& png :
       render_plots(make_plots(out, results, resampling_table), out, "denoise-bench"))
    plotted += " " + png;
  if (!args.common.quiet) std::cout << md;
  std::cout << "Wrote " << out.string() << "/denoise_bench.md, denoise_bench.json, the CSVs"
            << (plotted.empty() ? "" : ",") << plotted << " (plot scripts *.gp beside them) in "
            << ProgressLine::format_duration(seconds) << ".\n";
}

}  // namespace

void register_denoise_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* bench = app.add_subcommand(
      "denoise-bench",
      "Benchmark the DM-based denoisers on a GMM prior beside its exact CME, LMMSE and LS: with "
      "the exact noise predictor eps* of the GMM (oracle) and, with --checkpoint, a trained "
      "network. Experiments (--experiments, all by default): nmse (NMSE against the SNR for mean "
      "forwarding at several T, one-step Tweedie, one ancestral run, the Monte-Carlo posterior "
      "mean, DDIM; with NFE and wall time), steps (the error after every reverse step of mean "
      "forwarding), resampling (re-sampling on against off, and the posterior mean against the "
      "number of runs M), mismatch (the denoiser told a wrong SNR). Writes CSVs, "
      "denoise_bench.json, denoise_bench.md and PNG plots into --out.\n"
      "Example: dpmlab denoise-bench --gmm runs/gmm/gmm.safetensors --checkpoint "
      "runs/train/best.safetensors --out runs/denoise-bench");
  bench->add_option("--gmm", args->gmm,
                    "the prior: a gmm.safetensors of `dpmlab gmm make` (normalised data); "
                    "default with --checkpoint: the one of its training data directory");
  bench
      ->add_option("--checkpoint", args->checkpoint,
                   "a network trained by `dpmlab train` on data of this GMM (optional)")
      ->check(CLI::ExistingFile);
  bench
      ->add_option("--experiments", args->experiments,
                   "a list of nmse, steps, resampling, mismatch")
      ->capture_default_str();
  bench
      ->add_option("--samples", args->samples,
                   "clean test samples drawn from the GMM (one batch per estimator and SNR)")
      ->check(CLI::Range(int64_t{2}, int64_t{1'000'000}))
      ->capture_default_str();
  bench->add_option("--snr", args->snr, "SNRs in dB: START:STOP:STEP or a list")
      ->capture_default_str();
  bench
      ->add_option("--T", args->T,
                   "the oracle's T for mean forwarding and Tweedie (the network: its own T)")
      ->capture_default_str();
  bench->add_option("--schedule", args->schedule,
                    "the oracle's schedule: paper_linear, ddpm_linear or cosine (default: the "
                    "checkpoint's, else paper_linear)");
  bench
      ->add_option("--detail-T", args->detail_T,
                   "T of the oracle's costly estimators and detailed experiments (default: the "
                   "checkpoint's T, else 50)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  bench
      ->add_option("--mc-samples", args->mc_samples,
                   "M of the Monte-Carlo posterior mean in the NMSE table (M t_hat NFE)")
      ->check(CLI::Range(int64_t{1}, int64_t{10000}))
      ->capture_default_str();
  bench->add_option("--step-snr", args->step_snr, "SNRs (dB) of the per-step experiment")
      ->capture_default_str();
  bench->add_option("--mc-M", args->mc_M, "run counts M of the posterior mean against M")
      ->capture_default_str();
  bench->add_option("--mc-snr", args->mc_snr, "SNRs (dB) of the posterior mean against M")
      ->capture_default_str();
  bench
      ->add_option("--mismatch", args->mismatch,
                   "assumed minus true SNR in dB: START:STOP:STEP or a list")
      ->capture_default_str();
  bench->add_option("--mismatch-snr", args->mismatch_snr, "true SNRs (dB) of the mismatch")
      ->capture_default_str();
  bench
      ->add_option("--estimators", args->estimators,
                   "the NMSE table's DM estimators: all (mean forwarding, Tweedie, one ancestral "
                   "run, the posterior mean over --mc-samples runs, DDIM) or cheap (mean "
                   "forwarding and Tweedie, a fraction of the network evaluations)")
      ->check(CLI::IsMember({"all", "cheap"}))
      ->capture_default_str();
  add_common_flags(bench, args->common, "runs/denoise-bench");
  bench->callback([bench, args] { run_bench(bench, *args); });
}

}  // namespace dpm::cli
